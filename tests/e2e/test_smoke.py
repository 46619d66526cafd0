from conftest import FORM


def test_create_add_transfer_history(client, make_user):
    make_user(1, '10.10')
    make_user(2)
    result = client.simulate_put('/transfer', headers=FORM,
                                 body='sender_id=1&receiver_id=2&balance=0.20')
    assert result.status_code == 200
    assert result.json == [{'user_id': 1, 'balance': '9.90'}, {'user_id': 2, 'balance': '0.20'}]
    rows = client.simulate_get('/history/uid=2').json
    assert [r['operation'] for r in rows] == ['user_add', 'balance_transfer']


def test_served_by_gunicorn(server):
    http = server.session()
    assert http.post(server.url + '/user', data={'uid': 7}).status_code == 201
    assert http.get(server.url + '/balance/7').json() == {'user_id': 7, 'balance': '0.00'}
