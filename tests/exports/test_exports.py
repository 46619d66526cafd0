"""The finance exports: rows and formats, filters, keys, manifests and
their signatures, reconciliation, the commands; on SQLite and PostgreSQL."""
import argparse
import csv
import datetime
import hashlib
import io
import json

import falcon.testing
import pytest

from balance_api import create_app
from balance_api.config import Settings
from balance_api.exports import commands, run, signing
from balance_api.money.models import Posting
from balance_api.storage.db import database
from gunicorn_server import bearer, create_key_in
from helpers import add, assert_error, assert_ok, send_form, transfer

INJECTIONS = ['=SUM(A1)', '+1', '-2', '@x', '\tx', '\rx']
HEADER = ('id,date,operation,sender_id,receiver_id,sum,transaction_description,key_name,'
          'sender_balance_after,receiver_balance_after,sender_hash,receiver_hash\r\n')


@pytest.fixture
def key_file(tmp_path):
    path = str(tmp_path / 'signing.pem')
    signing.create_key_file(path)
    return path


@pytest.fixture
def settings(database_url, key_file):
    return Settings(database_url=database_url, signing_key_file=key_file)


@pytest.fixture
def signed(settings):
    """The API with a signing key, sent with an admin key."""
    app = create_app(settings)
    return falcon.testing.TestClient(app, headers=bearer(
        create_key_in(database.obj, 'export-admin', ['admin'])))


def _today():
    return datetime.datetime.now(datetime.timezone.utc).date().isoformat()


def _range(**extra):
    return {'date-start': _today(), 'date-end': _today(), **extra}


def _ledger(client):
    for uid in (1, 2, 3):
        assert_ok(send_form(client, 'POST', '/user', {'uid': uid}), 201)
    assert_ok(add(client, 1, '100.00', trans_desc='first'))
    for text in INJECTIONS:
        assert_ok(transfer(client, 1, 2, '1.05', trans_desc=text))
    assert_ok(transfer(client, 2, 3, '0.50'))


def _jsonl(text):
    lines = [json.loads(line) for line in text.splitlines()]
    return lines[:-1], lines[-1]['manifest']


def test_csv_rows_and_injection_rules(signed):
    _ledger(signed)
    result = signed.simulate_get('/export', params=_range())
    assert result.status_code == 200
    assert result.headers['content-type'] == 'text/csv; charset=utf-8'
    assert result.headers['content-disposition'] == (
        'attachment; filename="journal-%s-%s.csv"' % (_today(), _today()))
    assert result.text.startswith(HEADER)
    rows = list(csv.DictReader(io.StringIO(result.text, newline='')))
    assert [row['id'] for row in rows] == [str(n) for n in range(1, 12)]
    assert [row['transaction_description'] for row in rows[4:10]] == ["'" + t for t in INJECTIONS]
    deposit = rows[3]
    assert (deposit['operation'], deposit['sender_id'], deposit['receiver_id'], deposit['sum'],
            deposit['sender_balance_after'], deposit['receiver_balance_after']) == (
        'balance_add', '0', '1', '100.00', '', '100.00')
    assert len(deposit['sender_hash']) == 64 and len(deposit['receiver_hash']) == 64
    created = rows[0]
    assert (created['operation'], created['sender_balance_after'], created['sender_hash'],
            created['receiver_balance_after']) == ('user_add', '', '', '0.00')
    last = rows[-1]
    assert (last['sender_balance_after'], last['receiver_balance_after']) == ('5.80', '0.50')
    assert rows[4]['date'].endswith('Z') and len(rows[4]['date']) == 27
    assert all(line.endswith('\r') for line in result.text.split('\n')[:-1])


def test_jsonl_keeps_the_text_exactly_and_ends_with_the_manifest(signed):
    _ledger(signed)
    result = signed.simulate_get('/export', params=_range(format='jsonl'))
    assert result.headers['content-disposition'].endswith('.jsonl"')
    rows, manifest = _jsonl(result.text)
    assert [row['transaction_description'] for row in rows[4:10]] == INJECTIONS
    assert rows[3]['sum'] == '100.00' and rows[3]['sender_balance_after'] is None
    body = result.content[:result.content.rindex(b'{"manifest"')]
    assert manifest['sha256'] == hashlib.sha256(body).hexdigest()
    assert (manifest['rows'], manifest['first_id'], manifest['last_id']) == (11, 1, 11)
    assert manifest['sums'] == {'user_add': '0.00', 'user_delete': '0.00',
                                'balance_add': '100.00', 'balance_sub': '0.00',
                                'balance_transfer': '6.80'}
    assert [(a['account_id'], a['opening_balance'], a['closing_balance'])
            for a in manifest['accounts']] == [(1, '0.00', '93.70'), (2, '0.00', '5.80'),
                                                (3, '0.00', '0.50')]
    assert manifest['accounts'][2]['last_hash'] == rows[-1]['receiver_hash']
    public = signed.simulate_get('/export/public-key').json['public_key']
    assert signing.verify(manifest, public)
    assert not signing.verify({**manifest, 'rows': 10}, public)


def test_the_csv_manifest_matches_the_bytes(signed):
    _ledger(signed)
    data = signed.simulate_get('/export', params=_range()).content
    manifest = assert_ok(signed.simulate_get('/export/manifest', params=_range()))
    assert manifest['sha256'] == hashlib.sha256(data).hexdigest()
    assert manifest['parameters'] == {'date-start': _today(), 'date-end': _today(),
                                      'uid': None, 'operation': [], 'format': 'csv'}
    assert manifest['snapshot_at'].endswith('Z')


def test_filters_by_uid_and_operation(signed):
    _ledger(signed)
    result = signed.simulate_get('/export', params=_range(uid='3'))
    assert result.headers['content-disposition'].endswith('-uid-3.csv"')
    rows = list(csv.DictReader(io.StringIO(result.text, newline='')))
    assert [(r['operation'], r['sender_id'], r['receiver_id']) for r in rows] == [
        ('user_add', '0', '3'), ('balance_transfer', '2', '3')]
    result = signed.simulate_get('/export', query_string='date-start=%s&date-end=%s'
                                 '&operation=user_add&operation=balance_add' % (_today(), _today()))
    rows = list(csv.DictReader(io.StringIO(result.text, newline='')))
    assert [r['operation'] for r in rows] == ['user_add'] * 3 + ['balance_add']
    manifest = assert_ok(signed.simulate_get(
        '/export/manifest', query_string='date-start=%s&date-end=%s&operation=balance_add'
        % (_today(), _today())))
    assert manifest['sums'] == {'balance_add': '100.00'}
    assert [a['account_id'] for a in manifest['accounts']] == [1]


def test_days_outside_the_range_are_left_out(signed):
    _ledger(signed)
    tomorrow = (datetime.date.fromisoformat(_today()) + datetime.timedelta(days=1)).isoformat()
    result = signed.simulate_get('/export', params={'date-start': tomorrow, 'date-end': tomorrow})
    assert result.text == HEADER


@pytest.mark.parametrize('query, code', [
    ('', 802), ('date-start=2024-01-01', 802), ('date-start=2024-1-01&date-end=2024-01-02', 802),
    ('date-start=2024-02-30&date-end=2024-03-01', 802),
    ('date-start=2024-01-02&date-end=2024-01-01', 803),
    ('date-start=2024-01-01&date-end=2024-01-01&uid=0', 804),
    ('date-start=2024-01-01&date-end=2024-01-01&operation=add', 805),
    ('date-start=2024-01-01&date-end=2024-01-01&format=xml', 806),
    ('date-start=2024-01-01&date-end=2024-01-01&limit=5', 801),
    ('date-start=2024-01-01&date-end=2024-01-01&date-end=2024-01-01', 801),
])
def test_bad_queries_are_coded(signed, query, code):
    assert_error(signed.simulate_get('/export', query_string=query), code)


def test_points_export_bad_event_type(signed):
    assert_error(signed.simulate_get('/export/points', query_string='date-start=2024-01-01&'
                                     'date-end=2024-01-01&event_type=x'), 807)


@pytest.fixture
def unsigned(database_url):
    """The API with no signing key configured, sent with an admin key."""
    app = create_app(Settings(database_url=database_url, signing_key_file=''))
    return falcon.testing.TestClient(app, headers=bearer(
        create_key_in(database.obj, 'unsigned-admin', ['admin'])))


def test_no_signing_key(unsigned):
    client = unsigned
    _ledger(client)
    assert client.simulate_get('/export', params=_range()).status_code == 200
    assert_error(client.simulate_get('/export', params=_range(format='jsonl')), 810)
    assert_error(client.simulate_get('/export/manifest', params=_range()), 810)
    assert_error(client.simulate_get('/export/public-key'), 811)


def test_a_user_bound_key_exports_its_own_rows_only(signed):
    _ledger(signed)
    anonymous = falcon.testing.TestClient(signed.app)
    headers = bearer(create_key_in(database.obj, 'shop-3', ['Balance:Api:Export:Get'], uid=3))
    result = signed.simulate_get('/export', params=_range(), headers=headers)
    rows = list(csv.DictReader(io.StringIO(result.text, newline='')))
    assert {r['id'] for r in rows} == {'3', '11'}
    assert_error(signed.simulate_get('/export', params=_range(uid='2'), headers=headers), 707)
    assert_error(signed.simulate_get('/reconciliation', params=_range(), headers=headers), 707)
    assert_error(anonymous.simulate_get('/export', params=_range()), 701)
    other = bearer(create_key_in(database.obj, 'reader', ['Balance:Api:History:List']))
    assert_error(anonymous.simulate_get('/export', params=_range(), headers=other), 706)
    assert anonymous.simulate_get('/export/public-key').status_code == 200


def test_points_export(signed):
    assert_ok(send_form(signed, 'POST', '/user', {'uid': 1}), 201)
    assert_ok(signed.simulate_post('/points/1/add', json={'payer': '=EVIL', 'points': 100}), 201)
    assert_ok(signed.simulate_post('/points/1/spend', json={'points': 30}))
    result = signed.simulate_get('/export/points', params=_range())
    rows = list(csv.DictReader(io.StringIO(result.text, newline='')))
    assert [(r['payer'], r['event_type'], r['amount'], r['balance_after']) for r in rows] == [
        ("'=EVIL", 'issue', '100', '100'), ("'=EVIL", 'use', '-30', '70')]
    assert rows[1]['draws'] == '%s:30' % rows[0]['id']
    rows, manifest = _jsonl(signed.simulate_get('/export/points',
                                                params=_range(format='jsonl')).text)
    assert rows[0]['payer'] == '=EVIL'
    assert manifest['sums']['issue'] == 100 and manifest['sums']['use'] == -30
    assert manifest['wallets'] == [{'member_id': 1, 'club': 'default', 'wallet': 'default',
                                    'opening_balance': 0, 'closing_balance': 70}]
    assert manifest['members'] == [{'member_id': 1, 'last_hash': rows[1]['hash']}]


def test_reconciliation_passes_then_names_the_tampered_entry(signed):
    _ledger(signed)
    assert assert_ok(signed.simulate_get('/reconciliation', params=_range())) == {
        'ok': True, 'accounts': 3, 'breaks': [], 'unlisted_breaks': 0}
    with database.obj.connection_context():
        Posting.update(amount='2.05').where(Posting.journal == 6, Posting.account == 2).execute()
    result = assert_ok(signed.simulate_get('/reconciliation', params=_range()))
    assert result['ok'] is False
    assert result['breaks'] == [{'kind': 'account', 'account_id': 2, 'opening_balance': '0.00',
                                 'postings_sum': '6.80', 'closing_balance': '5.80',
                                 'difference': '-1.00', 'entries': [6]}]


def _cli(settings, *argv):
    parser = argparse.ArgumentParser(prog='python -m balance_api')
    handlers = commands.register(parser.add_subparsers(dest='command', required=True))
    args = parser.parse_args(argv)
    # A command binds the models to a database of its own; the app's comes back after.
    bound = database.obj
    try:
        return handlers[args.command](settings, args)
    finally:
        database.initialize(bound)


@pytest.mark.parametrize('format', ['csv', 'jsonl'])
def test_export_and_verify_export_round_trip(signed, settings, tmp_path, capsys, format):
    _ledger(signed)
    out, manifest = str(tmp_path / ('e.' + format)), str(tmp_path / 'm.json')
    assert _cli(settings, 'export', '--date-start', _today(), '--date-end', _today(),
                '--format', format, '--output', out, '--manifest', manifest) == 0
    public = signed.simulate_get('/export/public-key').json['public_key']
    check = ['verify-export', out] + (['--manifest', manifest] if format == 'csv' else [])
    capsys.readouterr()
    assert _cli(settings, *check, '--public-key', public, '--against-ledger') == 0
    text = capsys.readouterr().out
    assert 'signature: valid, checked with the public key given' in text
    assert 'closing balances and last hashes match the database' in text
    assert _cli(settings, *check) == 0
    assert 'the public key in the manifest' in capsys.readouterr().out
    with open(out, 'rb') as handle:
        original = handle.read()
    with open(out, 'wb') as handle:
        handle.write(original.replace(b'first', b'firsu'))
    assert _cli(settings, *check, '--public-key', public) == 1
    assert 'PROBLEM sha256' in capsys.readouterr().out
    with open(out, 'wb') as handle:
        handle.write(original)
    assert_ok(add(signed, 3, '1.00'))
    assert _cli(settings, *check, '--against-ledger') == 1
    assert 'PROBLEM ledger' in capsys.readouterr().out


def test_export_refuses_a_manifest_path_it_cannot_write_before_exporting(
        signed, settings, tmp_path, capsys):
    _ledger(signed)
    out = tmp_path / 'e.csv'
    assert _cli(settings, 'export', '--date-start', _today(), '--date-end', _today(),
                '--output', str(out), '--manifest', str(tmp_path / 'missing' / 'm.json')) == 1
    assert 'cannot write %s' % (tmp_path / 'missing' / 'm.json') in capsys.readouterr().err
    # Neither the export nor a half-written file is left behind.
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith('e.csv')]


def test_export_writes_its_files_whole_under_their_names(signed, settings, tmp_path):
    _ledger(signed)
    out, manifest = tmp_path / 'e.jsonl', tmp_path / 'm.json'
    out.write_bytes(b'an older export')
    assert _cli(settings, 'export', '--date-start', _today(), '--date-end', _today(),
                '--format', 'jsonl', '--output', str(out), '--manifest', str(manifest)) == 0
    rows, last = _jsonl(out.read_text(encoding='utf-8'))
    assert len(rows) == 11 and last == json.loads(manifest.read_text(encoding='utf-8'))
    assert not [p for p in tmp_path.iterdir() if p.name.endswith('.partial')]


def test_output_and_manifest_naming_one_file_is_a_usage_error(signed, settings, tmp_path,
                                                               capsys):
    same = str(tmp_path / 'e.jsonl')
    assert _cli(settings, 'export', '--date-start', _today(), '--date-end', _today(),
                '--output', same, '--manifest', str(tmp_path / '.' / 'e.jsonl')) == 2
    assert 'name the same file' in capsys.readouterr().err
    assert _cli(settings, 'export', '--date-start', _today(), '--date-end', _today(),
                '--output', str(tmp_path)) == 1
    assert 'it is a directory' in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith('e')) == []


@pytest.mark.parametrize('failure', [RuntimeError('the database went away'), KeyboardInterrupt()])
def test_an_export_that_fails_midway_leaves_the_older_files_as_they_were(
        signed, settings, tmp_path, monkeypatch, failure):
    _ledger(signed)
    out, manifest = tmp_path / 'e.jsonl', tmp_path / 'm.json'
    out.write_bytes(b'an older export')
    manifest.write_bytes(b'an older manifest')
    real_chunks = run.Export.chunks

    def chunks_then_failure(export):
        for chunk in real_chunks(export):
            yield chunk
            raise failure

    monkeypatch.setattr(run.Export, 'chunks', chunks_then_failure)
    with pytest.raises(type(failure)):
        _cli(settings, 'export', '--date-start', _today(), '--date-end', _today(),
             '--format', 'jsonl', '--output', str(out), '--manifest', str(manifest))
    assert out.read_bytes() == b'an older export'
    assert manifest.read_bytes() == b'an older manifest'
    assert not [p for p in tmp_path.iterdir() if p.name.endswith('.partial')]


def test_a_signed_export_without_a_signing_key_is_a_usage_error(signed, database_url, tmp_path,
                                                                 capsys):
    unsigned = Settings(database_url=database_url, signing_key_file='')
    for extra in (['--format', 'jsonl'], ['--manifest', str(tmp_path / 'm.json')]):
        assert _cli(unsigned, 'export', '--date-start', _today(), '--date-end', _today(),
                    '--output', str(tmp_path / 'e'), *extra) == 2
        assert 'no signing key is configured' in capsys.readouterr().err
    assert not (tmp_path / 'e').exists() and not (tmp_path / 'm.json').exists()


def test_reconcile_and_signing_key_commands(signed, settings, tmp_path, capsys):
    _ledger(signed)
    assert _cli(settings, 'reconcile', '--date-start', _today(), '--date-end', _today()) == 0
    assert 'reconciliation OK' in capsys.readouterr().out
    assert _cli(settings, 'reconcile', '--date-start', _today(), '--date-end', '2000-01-01') == 2
    path = str(tmp_path / 'new.pem')
    assert _cli(settings, 'signing-key', '--out', path) == 0
    public = capsys.readouterr().out.strip().splitlines()[-1]
    assert public == signing.public_key_text(signing.load_private_key(path))
    assert _cli(settings, 'signing-key', '--out', path) == 1
    assert _cli(Settings(), 'signing-key') == 2


AWKWARD = ['say "hi", then go', 'two\r\nlines', 'lone\nfeed', 'lone\rreturn', 'tab\tinside',
           '=1+1', '+1', '-3', '@sum', '\tlead', '\rlead', "'quoted", 'café €5 😀',
           'back\\slash /', 'ctrl \x01\x02\x1f\x7f\x85 end', '\u2028sep\u2029', '""', ',', ' ']


def _python_rendering(source, format):
    """What the formatting functions write for the rows read through the ORM."""
    from balance_api.exports import formats, query, run
    db = database.obj
    found = query.build(_today(), _today(), format=format)
    writer = formats.writer(format, source.columns, source.text_columns)
    data = writer.header()
    with db.connection_context(), db.atomic():
        for batch in run.batches(db, source.rows(found, source.settled_id(db))):
            data += writer.rows(source.records(db, batch))
    return data


def _body(result, format):
    assert result.status_code == 200
    if format == 'jsonl':
        return result.content[:result.content.rindex(b'\n', 0, -1) + 1]
    return result.content


@pytest.mark.parametrize('format', ['csv', 'jsonl'])
def test_rendered_rows_match_the_formatting_functions_byte_for_byte(signed, format):
    from balance_api.exports.journal import JOURNAL
    from balance_api.exports.points import POINTS
    from balance_api.money.models import JournalEntry
    from balance_api.points.models import PointsEntry
    for uid in (1, 2):
        assert_ok(send_form(signed, 'POST', '/user', {'uid': uid}), 201)
    assert_ok(add(signed, 1, '1000.00', trans_desc='start'))
    for text in AWKWARD:
        assert_ok(transfer(signed, 1, 2, '0.01', trans_desc=text))
    assert_ok(transfer(signed, 2, 1, '0.12'))
    # Key names as odd as descriptions, and one missing.
    with database.obj.connection_context():
        ids = [entry.id for entry in JournalEntry.select(JournalEntry.id).order_by(JournalEntry.id)]
        for entry_id, text in zip(ids, AWKWARD + [None]):
            JournalEntry.update(key_name=text).where(JournalEntry.id == entry_id).execute()
    payers = ['"q", ok', '=EVIL', '-x', '@y', 'café😀€', 'back\\slash', 'a,b', '+1', "'p"]
    for payer in payers:
        assert_ok(signed.simulate_post('/points/1/add', json={'payer': payer, 'points': 7}), 201)
    assert_ok(signed.simulate_post('/points/1/add', json={
        'payer': 'old', 'points': 5, 'timestamp': '0005-01-02T03:04:05.000006Z'}), 201)
    assert_ok(signed.simulate_post('/points/1/spend', json={'points': 40}))
    with database.obj.connection_context():
        points = [entry.id for entry in PointsEntry.select(PointsEntry.id).order_by(PointsEntry.id)]
        for entry_id, text in zip(points, AWKWARD):
            PointsEntry.update(transaction_id=text, wallet=text.strip() or 'w',
                               key_name=text[::-1]).where(PointsEntry.id == entry_id).execute()
    for path, source in (('/export', JOURNAL), ('/export/points', POINTS)):
        body = _body(signed.simulate_get(path, params=_range(format=format)), format)
        expected = _python_rendering(source, format)
        assert body == expected
        assert len(body.splitlines()) > 10
