"""A key pair the bot generated, as the person sees it while Binance's API key is awaited."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from bot.vocabulary import KeyPurpose, KeyType

__all__ = ["KeyAlgorithm", "PendingPair"]


class KeyAlgorithm(StrEnum):
    """What the bot generates; the values are the key-type menu's options in the forms.
    Binance accepts Ed25519 (recommended) and RSA 2048 / 4096 public keys
    (https://developers.binance.com/docs/binance-spot-api-docs/faqs/api_key_types)."""

    ED25519 = "generate_ed25519"
    RSA_2048 = "generate_rsa_2048"
    RSA_4096 = "generate_rsa_4096"

    @property
    def key_type(self) -> KeyType:
        return KeyType.ED25519 if self is KeyAlgorithm.ED25519 else KeyType.RSA

    @property
    def shown(self) -> str:
        return {
            KeyAlgorithm.ED25519: "Ed25519",
            KeyAlgorithm.RSA_2048: "RSA 2048",
            KeyAlgorithm.RSA_4096: "RSA 4096",
        }[self]


@dataclass(frozen=True)
class PendingPair:
    pending_id: str
    label: str
    account_alias: str
    owner_user_id: str
    created_by: str
    purpose: KeyPurpose
    algorithm: KeyAlgorithm
    public_key_pem: str
    expires_at: datetime
    channel: str | None = None
    rotate_key_id: str | None = None  # set: the pair replaces this key (a rotation)
    # The only addresses the key may be used from, when the bot knows them (a governor: the
    # bot's own, BOT_EGRESS_IPS).
    trusted_ips: tuple[str, ...] = ()

    @property
    def recipients(self) -> tuple[str, ...]:
        """Who gets the public key and the steps: the key's owner (who creates the key in
        Binance), and whoever asked for the pair if that is someone else."""
        return tuple(dict.fromkeys([self.owner_user_id, self.created_by]))
