"""aliasync's exceptions: one tree, rooted at :class:`AliasyncError`.

::

    AliasyncError
    ├── UsageError                   bad input from the user; the CLI exits 2, nothing is touched
    │   ├── InvalidImageError        a file that is not a usable disk image
    │   ├── InvalidNameError         a name or family that breaks the ECS naming rules
    │   ├── ConfigurationError       endpoints file, credentials, region selection
    │   └── JournalError             an unknown run, a corrupt journal, an image that changed
    └── CloudError                   an Alibaba Cloud API call failed (code, message, status)
        ├── TransientCloudError      worth retrying: 5xx, throttling, dropped connections
        │   ├── ThrottledError       throttling, with the server's retry hint if it gave one
        │   └── UnreachableError     the host cannot be reached at all (name, refusal, proxy)
        └── PermanentCloudError      retrying cannot help: auth, validation, quota, missing role
            └── NotFoundError        the resource does not exist

Foreign exceptions (aiohttp, botocore, the tea SDK) are mapped to this tree at exactly one
boundary, ``aliasync.cloud._transport``, with ``raise ... from``.
"""

from __future__ import annotations


class AliasyncError(Exception):
    """Base of every error aliasync raises on purpose."""


class UsageError(AliasyncError):
    """Bad input from the user: exit code 2, nothing created or changed in the cloud."""


class InvalidImageError(UsageError):
    """A file that cannot be imported as a disk image."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class InvalidNameError(UsageError):
    """A name or family that ECS would refuse."""


class ConfigurationError(UsageError):
    """Unusable configuration: endpoints file, credentials or region selection."""


class JournalError(UsageError):
    """The run journal cannot be used to resume: unknown run, corruption, changed image."""


class CloudError(AliasyncError):
    """A cloud API call failed. Never carries secrets: only code, message and identifiers."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int | None = None,
        service: str = "",
        action: str = "",
        region: str | None = None,
        request_id: str | None = None,
    ) -> None:
        where = f"{service}:{action}" if service and action else service or action
        if region:
            where = f"{where} in {region}" if where else region
        super().__init__(f"{where}: {code}: {message}" if where else f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.service = service
        self.action = action
        self.region = region
        self.request_id = request_id


class TransientCloudError(CloudError):
    """A failure that a retry may cure."""


class ThrottledError(TransientCloudError):
    """The API is throttling us; ``retry_after`` is the server's hint in seconds, if any."""

    def __init__(
        self, code: str, message: str, *, retry_after: float | None = None, **kw: object
    ) -> None:
        super().__init__(code, message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after


class UnreachableError(TransientCloudError):
    """The endpoint cannot be reached at all: its name does not resolve, nothing accepts the
    connection, or the proxy cannot reach it. ``host`` says which; ``can_recover`` is False
    for a name that does not exist, which no retry cures. The code stays ``ConnectionError``.
    """

    def __init__(self, host: str, reason: str, *, can_recover: bool = True, **kw: object) -> None:
        super().__init__("ConnectionError", f"cannot reach {host}: {reason}", **kw)  # type: ignore[arg-type]
        self.host = host
        self.can_recover = can_recover


class PermanentCloudError(CloudError):
    """A failure that retrying cannot cure."""


class NotFoundError(PermanentCloudError):
    """The named resource does not exist."""
