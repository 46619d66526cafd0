"""The exports' resources: the journal and points exports, their manifests,
the public key and reconciliation.

Each states its permit; a key bound to a user exports that user's rows
only (its uid is forced; another uid is 707) and cannot reconcile the
whole ledger.
"""
import falcon

from ..auth import permits
from ..storage.db import open_for_request
from ..web.commands import AnswersHead
from . import errors, formats, query, signing
from .reconcile import reconcile
from .run import Export, run_to_end


def signing_key(settings):
    """The private key, or the coded 503 when none is configured or readable."""
    try:
        return signing.load_private_key(settings.signing_key_file)
    except signing.SigningKeyMissing as exc:
        raise errors.SigningKeyNotConfigured(str(exc)) from None


def _query(req, source):
    # A source may take no kind filter (``filter_key`` None): the key is then unknown.
    found = query.parse(req.query_string, getattr(source, 'filter_key', source.kind_key),
                        source.kinds)
    caller = req.context.caller
    if caller.uid is not None:
        if found.uid is None:
            found = found._replace(uid=caller.uid)
        caller.check_user(found.uid)
    return found


class _Body:
    """A streamed export: owns its connection and snapshot, released when
    the server closes the body (read to the end or not)."""

    def __init__(self, db, chunks):
        self.db = db
        self.chunks = chunks

    def __iter__(self):
        for chunk in self.chunks:
            if chunk:
                yield chunk

    def close(self):
        try:
            self.chunks.close()
        finally:
            self.db.close()


def stream_export(resp, db, export):
    """Answer with ``export``'s bytes. The snapshot is opened and the first
    rows read here, so failing to is still a numbered JSON error."""
    open_for_request(db)
    chunks = export.chunks()
    try:
        next(chunks)
    except BaseException:
        chunks.close()
        db.close()
        raise
    resp.content_type = formats.MEDIA_TYPES[export.query.format]
    resp.downloadable_as = export.query.filename(export.source.stem)
    resp.stream = _Body(db, chunks)


class ExportRows(AnswersHead):
    """GET /export, GET /export/points: the rows, as CSV or JSON Lines (signed manifest last)."""

    permits = {'GET': permits.EXPORT_GET}
    # The stream opens its own connection.
    uses_database = False

    def __init__(self, db, settings, source):
        self.db = db
        self.settings = settings
        self.source = source

    def on_get(self, req, resp):
        found = _query(req, self.source)
        key = signing_key(self.settings) if found.format == 'jsonl' else None
        stream_export(resp, self.db, Export(self.db, self.source, found, key))


class ExportManifest(AnswersHead):
    """GET /export/manifest, GET /export/points/manifest: the signed manifest of
    the export the same parameters give (computed over its bytes, not sent)."""

    permits = {'GET': permits.EXPORT_GET}

    def __init__(self, db, settings, source):
        self.db = db
        self.settings = settings
        self.source = source

    def on_get(self, req, resp):
        found = _query(req, self.source)
        key = signing_key(self.settings)
        resp.media = run_to_end(Export(self.db, self.source, found, key, send=False)).manifest


class PublicKey(AnswersHead):
    """GET /export/public-key: what auditors check manifests with."""

    public = True
    uses_database = False

    def __init__(self, settings):
        self.settings = settings

    def on_get(self, req, resp):
        try:
            key = signing.load_private_key(self.settings.signing_key_file)
        except signing.SigningKeyMissing:
            raise errors.PublicKeyNotConfigured() from None
        resp.media = {'algorithm': signing.ALGORITHM, 'public_key': signing.public_key_text(key)}


class Reconciliation(AnswersHead):
    """GET /reconciliation: every account and the system as a whole, over the days given."""

    permits = {'GET': permits.EXPORT_GET}

    def __init__(self, db):
        self.db = db

    def on_get(self, req, resp):
        found = query.parse(req.query_string, formats=False, uid=False)
        # About every account.
        req.context.caller.require_unbound()
        resp.media = reconcile(self.db, found).to_dict()
        resp.status = falcon.HTTP_200
