"""The queue's own exceptions: callers never catch SQLAlchemy or driver errors."""


class QueueError(Exception):
    """Base of every error the job store raises."""


class DatabaseUnavailable(QueueError):
    """The database cannot be reached or the URL is not usable."""


class JobNotFound(QueueError):
    def __init__(self, job_id: int) -> None:
        super().__init__(f"job {job_id} does not exist")
        self.job_id = job_id


class LeaseLost(QueueError):
    """The attempt is no longer current: the job was recovered, cancelled or taken by another worker."""

    def __init__(self, job_id: int, attempt: int) -> None:
        super().__init__(f"job {job_id}: attempt {attempt} is no longer current")
        self.job_id = job_id
        self.attempt = attempt


class InvalidTransition(QueueError):
    """The job is not in a state that allows the operation (e.g. cancelling a finished job)."""
