"""What a code looks like, and drawing them: the alphabet, uniqueness, randomness."""
from collections import Counter

from balance_api.discounts import codes


def test_the_alphabet_has_32_unambiguous_symbols():
    assert len(codes.ALPHABET) == len(set(codes.ALPHABET)) == 32
    assert not set('01IO') & set(codes.ALPHABET)
    assert codes.ALPHABET == ''.join(sorted(codes.ALPHABET))
    assert all(symbol.isdigit() or symbol.isupper() for symbol in codes.ALPHABET)


def test_draw_gives_distinct_codes_of_the_alphabet():
    drawn = codes.draw(50000)
    assert len(drawn) == len(set(drawn)) == 50000
    assert all(codes.is_code(code) for code in drawn)


def test_every_symbol_is_used_evenly_in_every_position():
    drawn = codes.draw(32000)
    for position in range(codes.LENGTH):
        counts = Counter(code[position] for code in drawn)
        assert set(counts) == set(codes.ALPHABET)
        # 1,000 expected each; a fair draw stays well within 20 %.
        assert min(counts.values()) > 800 and max(counts.values()) < 1200, (position, counts)


def test_a_repeated_code_is_drawn_again(monkeypatch):
    # The first draw makes one code twice, the second the one missing.
    given = iter([bytes(10), b'\xff' * 5])
    monkeypatch.setattr(codes.secrets, 'token_bytes', lambda size: next(given))
    assert codes.draw(2) == ['22222222', 'ZZZZZZZZ']


def test_is_code_refuses_what_is_not_a_code():
    for text in ('ABCDEFG', 'ABCDEFGHJ', 'ABCDEFG1', 'abcdefgh', 'ABCDEFGO', 'ABCDEFGI',
                 'ABCD EFG', None, 12345678):
        assert not codes.is_code(text), text
    assert codes.is_code('7U7E845L')
