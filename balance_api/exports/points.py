"""The points entries as an export, with their manifest figures.

The date range is on ``created_at`` (when the entry was written): an
event's own time (``date``) may lie in the past, so a range of event times
would never be final.
"""
from peewee import SQL, NodeList, fn

from ..points.ledger import EVENT_TYPES
from ..points.models import PointsClub, PointsDraw, PointsEntry, PointsMember
from . import formats, pg_sql, run

COLUMNS = ('id', 'date', 'created_at', 'member_id', 'club', 'wallet', 'payer', 'event_type',
           'amount', 'balance_after', 'transaction_id', 'key_name', 'hash', 'draws')


def entries(query, *columns):
    rows = PointsEntry.select(*columns).where(PointsEntry.created_at >= query.start)
    if query.end is not None:
        rows = rows.where(PointsEntry.created_at < query.end)
    if query.uid is not None:
        rows = rows.where(PointsEntry.member_id == query.uid)
    if query.kinds:
        rows = rows.where(PointsEntry.event_type.in_(list(query.kinds)))
    return rows


def _newest(column, before, *matches):
    """A correlated subquery: ``column`` of the newest entry before ``before``
    whose ``matches`` columns equal the outer row's."""
    newest = PointsEntry.alias('newest')
    found = newest.select(getattr(newest, column))
    for name, outer in matches:
        found = found.where(getattr(newest, name) == outer)
    if before is not None:
        found = found.where(newest.created_at < before)
    return found.order_by(newest.id.desc()).limit(1)


class PointsSource:
    name = 'points'
    stem = 'points'
    kind_key = 'event_type'
    kinds = EVENT_TYPES
    columns = COLUMNS
    text_columns = frozenset(['club', 'wallet', 'payer', 'transaction_id', 'key_name'])
    kind_column, amount_column, amount_type = 'event_type', 'amount', int

    @staticmethod
    def settled_id(db):
        # A member's entries are written under its lock, in id order; there
        # is no journal-wide settled id for points.
        return None

    @staticmethod
    def probe():
        PointsEntry.select(fn.MAX(PointsEntry.id)).scalar()

    @staticmethod
    def rows(query, settled):
        return (entries(query, PointsEntry.id, PointsEntry.event_at, PointsEntry.created_at,
                        PointsEntry.member_id, PointsClub.slug, PointsEntry.wallet,
                        PointsEntry.payer, PointsEntry.event_type, PointsEntry.amount,
                        PointsEntry.balance_after, PointsEntry.transaction_id,
                        PointsEntry.key_name, PointsEntry.hash)
                .join(PointsClub, on=(PointsEntry.club == PointsClub.id))
                .order_by(PointsEntry.id))

    @staticmethod
    def lines(query, settled, format):
        """PostgreSQL: ``(id, event_type, amount, line)`` of the rows ``rows``
        reads, ``line`` the exact text ``records`` and the writer give them."""
        draw = PointsDraw.alias('drawn')
        draws = (draw.select(NodeList((
            SQL('string_agg('), draw.grant.cast('text'), SQL("|| ':' ||"),
            draw.points.cast('text'), SQL(", ' ' ORDER BY"), draw.id, SQL(')'))))
            .where(draw.entry == PointsEntry.id))
        return (entries(query, PointsEntry.id, PointsEntry.event_type, PointsEntry.amount,
                        pg_sql.line(format, [
                            ('id', pg_sql.NUMBER, PointsEntry.id),
                            ('date', pg_sql.STAMP, PointsEntry.event_at),
                            ('created_at', pg_sql.STAMP, PointsEntry.created_at),
                            ('member_id', pg_sql.NUMBER, PointsEntry.member_id),
                            ('club', pg_sql.CLIENT_TEXT, PointsClub.slug),
                            ('wallet', pg_sql.CLIENT_TEXT, PointsEntry.wallet),
                            ('payer', pg_sql.CLIENT_TEXT, PointsEntry.payer),
                            ('event_type', pg_sql.PLAIN, PointsEntry.event_type),
                            ('amount', pg_sql.NUMBER, PointsEntry.amount),
                            ('balance_after', pg_sql.NUMBER, PointsEntry.balance_after),
                            ('transaction_id', pg_sql.CLIENT_TEXT, PointsEntry.transaction_id),
                            ('key_name', pg_sql.CLIENT_TEXT, PointsEntry.key_name),
                            ('hash', pg_sql.TEXT, PointsEntry.hash),
                            ('draws', pg_sql.PLAIN, draws)]))
                .join(PointsClub, on=(PointsEntry.club == PointsClub.id))
                .order_by(PointsEntry.id))

    @staticmethod
    def line_tally(query):
        return run.Tally(query.kinds or EVENT_TYPES, 0, int)

    @staticmethod
    def count_lines(tally, batch):
        sums = tally.sums
        for _, event_type, amount, _ in batch:
            sums[event_type] += amount
        tally.extend(len(batch), batch[0][0], batch[-1][0])

    @staticmethod
    def records(db, batch):
        draws = {}
        if batch:
            found = (PointsDraw.select(PointsDraw.entry, PointsDraw.grant, PointsDraw.points)
                     .where(PointsDraw.entry.between(batch[0][0], batch[-1][0]))
                     .order_by(PointsDraw.entry, PointsDraw.id).tuples())
            for entry_id, grant_id, points in found:
                draws.setdefault(entry_id, []).append('%d:%d' % (grant_id, points))
        return [dict(zip(COLUMNS, (
            row[0], formats.stamp(row[1]), formats.stamp(row[2]), *row[3:13],
            ' '.join(draws[row[0]]) if row[0] in draws else None)))
            for row in batch]

    @staticmethod
    def tally(query):
        return run.Tally(query.kinds or EVENT_TYPES, 0, int)

    @staticmethod
    def count(tally, record):
        tally.add(record['id'], record['event_type'], int(record['amount']))

    @staticmethod
    def figures(db, query, settled):
        """Opening and closing balance of every (member, club, wallet) the
        rows touch, from the entries' balance_after, and each member's last
        hash at the end of the range."""
        scope = entries(query, PointsEntry.id).order_by()
        outer = PointsEntry.alias('wallets')
        matches = (('member_id', outer.member_id), ('club', outer.club),
                   ('wallet', outer.wallet))
        wallets = (outer.select(outer.member_id, PointsClub.slug, outer.wallet,
                                _newest('balance_after', query.start, *matches),
                                _newest('balance_after', query.end, *matches))
                   .join(PointsClub, on=(outer.club == PointsClub.id))
                   .where(outer.id.in_(scope))
                   .group_by(outer.member_id, outer.club, PointsClub.slug, outer.wallet)
                   .order_by(outer.member_id, PointsClub.slug, outer.wallet))
        members = (PointsMember.select(PointsMember.member_id, _newest(
            'hash', query.end, ('member_id', PointsMember.member_id)))
            .where(PointsMember.member_id.in_(
                entries(query, PointsEntry.member_id).order_by()))
            .order_by(PointsMember.member_id))
        found = {'wallets': [], 'members': []}
        for batch in run.batches(db, wallets, name='wallets'):
            for member_id, club, wallet, opening, closing in batch:
                opening = 0 if opening is None else opening
                found['wallets'].append({
                    'member_id': member_id, 'club': club, 'wallet': wallet,
                    'opening_balance': opening,
                    'closing_balance': opening if closing is None else closing})
        for batch in run.batches(db, members, name='members'):
            for member_id, last_hash in batch:
                found['members'].append({'member_id': member_id, 'last_hash': last_hash})
        return found


POINTS = PointsSource()
