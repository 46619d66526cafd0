"""The service's clock: every timestamp it stores is naive UTC."""
import datetime


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
