"""The discount codes' audit rows exported like the journal: CSV and JSON Lines, signed
manifests with each brand's figures, verify-export, the server's rendering byte for byte."""
import argparse
import csv
import datetime
import io
import json

import falcon.testing
import pytest

from balance_api import create_app
from balance_api.config import Settings
from balance_api.discounts.models import DiscountAudit
from balance_api.exports import commands, formats, query, run, signing
from balance_api.exports.discounts import DISCOUNTS
from balance_api.storage.db import database
from discounts_helpers import GENERATE, claim, user_key
from gunicorn_server import bearer, create_key_in
from helpers import assert_error, assert_ok, generation_held_open, waits_for

HEADER = 'id,date,action,brand_id,codes,code,user_id,key_name\r\n'


@pytest.fixture
def settings(database_url, tmp_path):
    path = str(tmp_path / 'signing.pem')
    signing.create_key_file(path)
    return Settings(database_url=database_url, signing_key_file=path)


@pytest.fixture
def signed(settings):
    app = create_app(settings)
    return falcon.testing.TestClient(app, headers=bearer(
        create_key_in(database.obj, 'export-admin', ['admin'])))


@pytest.fixture
def audited(signed):
    """Two generations and three claims, the claims ``{uid: code}``."""
    users = {}
    for uid in (1, 2, 3):
        assert_ok(signed.simulate_post('/user', json={'uid': uid}), 201)
        users[uid] = user_key(uid)
    for brand_id, number in ((1, 4), (2, 2)):
        assert_ok(signed.simulate_post(GENERATE, json={'brand_id': brand_id,
                                                       'number_of_codes': number}), 201)
    anonymous = falcon.testing.TestClient(signed.app)
    found = {uid: assert_ok(claim(anonymous, uid, users[uid], 1))['data'] for uid in (1, 2)}
    found[3] = assert_ok(claim(anonymous, 3, users[3], 2))['data']
    return found


def _today():
    return datetime.datetime.now(datetime.timezone.utc).date().isoformat()


def _range(**extra):
    return {'date-start': _today(), 'date-end': _today(), **extra}


def test_csv_rows(signed, audited):
    result = signed.simulate_get('/export/discounts', params=_range())
    assert result.status_code == 200
    assert result.headers['content-disposition'] == (
        'attachment; filename="discounts-%s-%s.csv"' % (_today(), _today()))
    assert result.text.startswith(HEADER)
    rows = [(row['action'], row['brand_id'], row['codes'], row['code'], row['user_id'],
             row['key_name'])
            for row in csv.DictReader(io.StringIO(result.text, newline=''))]
    assert rows == [('generate', '1', '4', '', '', 'export-admin'),
                    ('generate', '2', '2', '', '', 'export-admin'),
                    ('claim', '1', '1', audited[1], '1', 'user-1'),
                    ('claim', '1', '1', audited[2], '2', 'user-2'),
                    ('claim', '2', '1', audited[3], '3', 'user-3')]


def test_jsonl_with_its_manifest(signed, audited):
    result = signed.simulate_get('/export/discounts', params=_range(format='jsonl'))
    lines = [json.loads(line) for line in result.text.splitlines()]
    rows, manifest = lines[:-1], lines[-1]['manifest']
    assert [row['code'] for row in rows] == [None, None, audited[1], audited[2], audited[3]]
    assert rows[0]['codes'] == 4 and rows[2]['user_id'] == 1
    assert manifest['export'] == 'discounts' and manifest['rows'] == 5
    assert manifest['sums'] == {'generate': 6, 'claim': 3}
    assert manifest['parameters']['action'] == []
    assert manifest['brands'] == [
        {'brand_id': 1, 'opening_generated': 0, 'opening_claimed': 0, 'closing_generated': 4,
         'closing_claimed': 2},
        {'brand_id': 2, 'opening_generated': 0, 'opening_claimed': 0, 'closing_generated': 2,
         'closing_claimed': 1}]
    public = signed.simulate_get('/export/public-key').json['public_key']
    assert signing.verify(manifest, public)
    assert assert_ok(signed.simulate_get('/export/discounts/manifest',
                                         params=_range(format='jsonl')))['sums'] == manifest['sums']


def test_opening_figures_count_what_came_before(signed, audited):
    yesterday = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1)
    with database.connection_context():
        first = DiscountAudit.select().order_by(DiscountAudit.id).first()
        DiscountAudit.update(created_at=yesterday.replace(tzinfo=None)).where(
            DiscountAudit.id == first.id).execute()
    manifest = assert_ok(signed.simulate_get('/export/discounts/manifest', params=_range()))
    assert manifest['rows'] == 4 and manifest['sums'] == {'generate': 2, 'claim': 3}
    assert manifest['brands'][0] == {'brand_id': 1, 'opening_generated': 4,
                                     'opening_claimed': 0, 'closing_generated': 4,
                                     'closing_claimed': 2}


def test_uid_keeps_that_users_claims_and_there_is_no_action_filter(signed, audited):
    result = signed.simulate_get('/export/discounts', params=_range(uid='2'))
    rows = list(csv.DictReader(io.StringIO(result.text, newline='')))
    assert [(row['user_id'], row['code']) for row in rows] == [('2', audited[2])]
    assert_error(signed.simulate_get('/export/discounts', params=_range(action='claim')), 801)


def _cli(settings, *argv):
    parser = argparse.ArgumentParser(prog='python -m balance_api')
    handlers = commands.register(parser.add_subparsers(dest='command', required=True))
    args = parser.parse_args(argv)
    bound = database.obj
    try:
        return handlers[args.command](settings, args)
    finally:
        database.initialize(bound)


@pytest.mark.parametrize('format', ['csv', 'jsonl'])
def test_export_and_verify_export_round_trip(signed, settings, audited, tmp_path, capsys,
                                             format):
    out, manifest = str(tmp_path / ('d.' + format)), str(tmp_path / 'm.json')
    assert _cli(settings, 'export', '--discounts', '--date-start', _today(), '--date-end',
                _today(), '--format', format, '--output', out, '--manifest', manifest) == 0
    check = ['verify-export', out] + (['--manifest', manifest] if format == 'csv' else [])
    capsys.readouterr()
    assert _cli(settings, *check, '--against-ledger') == 0
    assert 'export OK' in capsys.readouterr().out
    with open(out, 'rb') as handle:
        original = handle.read()
    with open(out, 'wb') as handle:
        handle.write(original.replace(audited[1].encode(), b'ZZZZZZZZ'))
    assert _cli(settings, *check) == 1
    assert 'PROBLEM sha256' in capsys.readouterr().out
    with open(out, 'wb') as handle:
        handle.write(original)
    # A claim after the export: the ledger has moved on.
    with database.connection_context():
        DiscountAudit.update(codes=5).where(DiscountAudit.id == 1).execute()
    assert _cli(settings, *check, '--against-ledger') == 1
    assert 'PROBLEM ledger' in capsys.readouterr().out
    assert _cli(settings, 'export', '--discounts', '--operation', 'claim', '--date-start',
                _today(), '--date-end', _today()) == 2


@pytest.mark.parametrize('format', ['csv', 'jsonl'])
def test_rendered_rows_match_the_formatting_functions_byte_for_byte(signed, audited, format):
    odd = ['=1+1', 'say "hi", ok', 'café😀', None]
    with database.connection_context():
        for audit_id, name in zip(range(1, 6), odd):
            DiscountAudit.update(key_name=name).where(DiscountAudit.id == audit_id).execute()
    result = signed.simulate_get('/export/discounts', params=_range(format=format))
    body = result.content
    if format == 'jsonl':
        body = body[:body.rindex(b'\n', 0, -1) + 1]
    found = query.build(_today(), _today(), format=format)
    writer = formats.writer(format, DISCOUNTS.columns, DISCOUNTS.text_columns)
    expected = writer.header()
    db = database.obj
    with db.connection_context(), db.atomic():
        for batch in run.batches(db, DISCOUNTS.rows(found, None)):
            expected += writer.rows(DISCOUNTS.records(db, batch))
    assert body == expected
    assert len(body.splitlines()) >= 5


@pytest.mark.parametrize('database_url', ['postgresql'], indirect=True)
def test_an_export_waits_for_a_generation_that_took_its_audit_id_first(signed, audited):
    """PostgreSQL hands out audit ids before commit: a claim committed after a
    generation still in flight has the larger id. An export taken meanwhile
    waits for the generation, so its row is in the export, not skipped for good."""
    with generation_held_open(database.obj, 3, 2):
        exporting, answers = waits_for(lambda: signed.simulate_get(
            '/export/discounts', params=_range(format='jsonl')))
        assert exporting.is_alive(), 'the export did not wait for the generation'
    exporting.join(30)
    assert answers
    lines = [json.loads(line) for line in answers[0].text.splitlines()]
    rows, manifest = lines[:-1], lines[-1]['manifest']
    assert [(row['action'], row['brand_id']) for row in rows][-1] == ('generate', 3)
    assert manifest['rows'] == len(rows) == 6
    assert manifest['settled_id'] == max(row['id'] for row in rows)
