"""The network layer's one error type, :class:`FetchError`, and the shards row status of
each of its reasons. Its text is deterministic (no object reprs, addresses or timings), so
it can be stored."""

from __future__ import annotations

from schemas import status as st


class FetchError(Exception):
    """A failed fetch. ``reason``: a short tag (``http_404``, ``timeout``, ``too_large``,
    ``blocked_private_address``, ``robots_disallowed`` ...); ``status``: the downloader's row
    status for it (:func:`row_status`); ``http_status``: the server's status code, if one
    was received; ``retries``: how many times the request was retried first."""

    def __init__(self, message: str, reason: str = "failed", *, status: str | None = None,
                 http_status: int | None = None, retryable: bool = False,
                 retry_after: float | None = None):
        super().__init__(message)
        self.reason, self.http_status = reason, http_status
        self.status = status or row_status(reason)
        self.retryable, self.retry_after = retryable, retry_after
        self.retries = 0


def row_status(reason: str) -> str:
    """The shards row status of a failure reason."""
    if reason == "blocked_userinfo":
        return st.filtered(st.BLOCKED_USERINFO)
    if reason.startswith("blocked_"):
        return st.filtered(st.BLOCKED_ADDRESS)
    return {"robots_disallowed": st.filtered(st.ROBOTS_TXT),
            "x_robots_tag": st.filtered(st.X_ROBOTS_TAG),
            "tdm_reservation": st.filtered(st.TDM_RESERVATION)}.get(reason, st.FAILED_TO_DOWNLOAD)
