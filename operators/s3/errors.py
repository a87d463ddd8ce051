"""Error classes that carry the retry decision.

Permanent problems (bad URI, missing bucket/key, access denied, object over the cap) subclass
AirflowFailException so a task fails at once instead of burning its retries; transient
problems (throttling, 5xx, timeouts, connection resets that outlived botocore's own retries)
are plain exceptions, so Airflow's task retries apply.
"""
from __future__ import annotations

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

try:  # Airflow 3 task SDK
    from airflow.sdk.exceptions import AirflowFailException
except ImportError:  # pragma: no cover - the operators package always runs with Airflow
    class AirflowFailException(Exception):  # type: ignore[no-redef]  # Airflow-free fallback for the engine tests
        """Stand-in when Airflow is absent: still a distinct, non-retried failure type."""


class S3Error(Exception):
    """Base of every error raised by facefactory.operators.s3."""


class S3PermanentError(S3Error, AirflowFailException):
    """Retrying cannot help; the task fails at once with this message."""


class S3UriError(S3PermanentError, ValueError):
    """An s3:// URI is malformed or unsafe (empty segments, '..', bad bucket name)."""


class S3NotFoundError(S3PermanentError):
    """The bucket or the key does not exist."""


class S3AccessDeniedError(S3PermanentError):
    """The credentials of the connection may not do this; fix the IAM policy, not the task."""


class S3TooLargeError(S3PermanentError):
    """The object is above the configured size cap."""


class S3IntegrityError(S3Error):
    """What was written does not match what was meant (size/checksum); a retry rewrites it."""


class S3TransientError(S3Error):
    """Throttling, 5xx, timeouts: botocore already retried; the task retry may succeed."""


class CdnTimeoutError(S3Error):
    """The CloudFront invalidation did not complete in time (it keeps running server-side)."""


ACCESS_DENIED_CODES = {
    "AccessDenied",
    "AccessDeniedException",
    "AllAccessDisabled",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AccountProblem",
    "ExpiredToken",
    "InvalidToken",
    "KMS.AccessDeniedException",
    "UnauthorizedOperation",
}
NOT_FOUND_CODES = {"NoSuchBucket", "NoSuchKey", "404", "NotFound", "NoSuchDistribution"}
TRANSIENT_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "ServiceUnavailable",
    "503",
    "500",
    "502",
    "504",
    "PriorRequestNotComplete",
}


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def http_status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def classify(exc: BaseException, action: str, target: str) -> S3Error:
    """Turn a botocore failure into one of the classes above, with a message naming what failed.

    `target` is a URI or resource name, never a URL with credentials.
    """
    if isinstance(exc, S3Error):
        return exc
    inner = exc.__cause__ or exc.__context__
    if not isinstance(exc, ClientError) and isinstance(inner, ClientError):
        exc = inner  # boto3's S3UploadFailedError / S3TransferFailedError wrap the real answer
    if isinstance(exc, NoCredentialsError):
        return S3AccessDeniedError(
            f"{action} {target}: no AWS credentials; configure the Airflow connection "
            "aws_default (or the worker's role)"
        )
    if isinstance(exc, ClientError):
        code, status = error_code(exc), http_status(exc)
        detail = exc.response.get("Error", {}).get("Message") or code
        if code in ACCESS_DENIED_CODES or status == 403:
            return S3AccessDeniedError(
                f"{action} {target}: access denied ({code}: {detail}); the credentials of the "
                "connection lack permission - fix the IAM/bucket policy, retrying will not help"
            )
        if code == "NoSuchBucket":
            return S3NotFoundError(f"{action} {target}: bucket does not exist")
        if code in NOT_FOUND_CODES or status == 404:
            return S3NotFoundError(f"{action} {target}: no such object ({code})")
        if code in TRANSIENT_CODES or status >= 500 or status == 429:
            return S3TransientError(f"{action} {target}: transient S3 error {code} (HTTP {status}): {detail}")
        return S3PermanentError(f"{action} {target}: S3 refused the request ({code}, HTTP {status}): {detail}")
    if isinstance(exc, ParamValidationError):
        return S3PermanentError(f"{action} {target}: invalid request: {exc}")
    if isinstance(exc, (BotoConnectionError, ReadTimeoutError, BotoCoreError, OSError)):
        return S3TransientError(f"{action} {target}: {type(exc).__name__}: {exc}")
    return S3Error(f"{action} {target}: {type(exc).__name__}: {exc}")
