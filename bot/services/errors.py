"""Domain errors: raised by services, turned into polite messages by the one error handler."""

from __future__ import annotations


class DomainError(Exception):
    """An expected refusal. ``user_message`` is safe to show: no secrets, no stack trace."""

    def __init__(self, user_message: str, *, field: str | None = None) -> None:
        super().__init__(user_message)
        self.user_message = user_message
        self.field = field  # the modal input the problem belongs to, if any


class InvalidInput(DomainError):
    pass


class KeyNotFound(DomainError):
    pass


class LabelTaken(DomainError):
    pass


class KeyAlreadyRegistered(DomainError):
    pass


class KeyNotUsable(DomainError):
    """Binance refused the key (or could not be asked) at registration: nothing is stored."""


class NeedsConfirmation(DomainError):
    """The key can do more than it should (more than the key it replaces, or than its declared
    purpose): only its owner may accept that, by ticking the form's confirmation."""
