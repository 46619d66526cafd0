"""Paging with limit/after_id never steps over a row that commits late (PostgreSQL)."""
import psycopg2
import pytest

from conftest import FORM


@pytest.mark.parametrize('database_url', ['postgresql'], indirect=True)
def test_pages_wait_for_rows_whose_ids_came_first(client, make_user, database_url):
    make_user(1)
    writer = psycopg2.connect(database_url.replace('postgresql://', 'postgres://'))
    try:
        cursor = writer.cursor()
        # An entry takes its id now and commits later, like a slow transfer.
        cursor.execute("INSERT INTO journal_entry (created_at, operation, sender_id, receiver_id,"
                       " sum, transaction_description) VALUES (now(), 'balance_add', 0, 1, 1,"
                       " 'in flight') RETURNING id")
        in_flight = cursor.fetchone()[0]
        added = client.simulate_put('/balance/1', headers=FORM, body='operation=add&balance=2')
        assert added.status_code == 200
        later = max(row['id'] for row in client.simulate_get('/history').json)
        assert later > in_flight

        page = client.simulate_get('/history?limit=100').json
        assert later not in [row['id'] for row in page]
        assert client.simulate_get('/history?after_id=0').json == page
    finally:
        writer.rollback()
        writer.close()
    page = client.simulate_get('/history?limit=100').json
    assert later in [row['id'] for row in page]
