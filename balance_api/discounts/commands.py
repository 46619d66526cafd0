"""The discount codes' command: ``discounts-stats``, what ``GET /discounts/{brand_id}/stats``
answers, for every brand or one."""
from . import errors, service

HEADER = ('brand', 'generated', 'claimed', 'remaining')


def stats_lines(db, brand_id=None):
    """The table's lines: every brand's figures, or one brand's (UnknownBrand
    when it has none)."""
    with db.connection_context():
        found = ([service.brand_stats(db, brand_id)] if brand_id is not None
                 else service.all_stats(db))
    rows = [HEADER] + [(str(stats.brand_id), str(stats.generated), str(stats.claimed),
                        str(stats.remaining)) for stats in found]
    widths = [max(len(row[column]) for row in rows) for column in range(len(HEADER))]
    return ['  '.join(cell.rjust(width) for cell, width in zip(row, widths)).rstrip()
            for row in rows]


def print_stats(db, brand_id=None, out=print, err=print):
    """Print the table; 0, or 1 for a brand that does not exist."""
    try:
        lines = stats_lines(db, brand_id)
    except errors.UnknownBrand:
        err('discounts-stats: brand %d does not exist (no codes were ever generated for it)'
            % brand_id)
        return 1
    for line in lines:
        out(line)
    return 0
