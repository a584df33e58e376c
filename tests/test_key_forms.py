"""Private keys in the PEM forms people paste, registered through the signed register modal.

Binance's docs generate Ed25519 and RSA keys as PKCS#8 PEM, but a team's keys also come from
``ssh-keygen`` (OpenSSH form: 387 characters for Ed25519) and ``openssl genrsa`` (PKCS#1, "RSA
PRIVATE KEY"). The key type declared in the modal decides how the key is read and signed,
whatever python-binance would guess from the text (it takes anything over 120 characters for
RSA), and the bot still sends nothing but allow-listed GETs.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from sqlmodel import Session, select

from bot.binance.transport import READ_ENDPOINTS
from storage.models import ApiKey
from tests.e2e import bot_client, submit_registration
from tests.factories import TRADE

RESTRICTIONS = "/sapi/v1/account/apiRestrictions"


def _reformat(pem: str, form: serialization.PrivateFormat) -> str:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    return key.private_bytes(
        serialization.Encoding.PEM, form, serialization.NoEncryption()
    ).decode()


FORMS = {
    "ed25519-pkcs8": ("ED25519", serialization.PrivateFormat.PKCS8),
    "ed25519-openssh": ("ED25519", serialization.PrivateFormat.OpenSSH),
    "rsa-pkcs8": ("RSA", serialization.PrivateFormat.PKCS8),
    "rsa-pkcs1": ("RSA", serialization.PrivateFormat.TraditionalOpenSSL),
    "rsa-openssh": ("RSA", serialization.PrivateFormat.OpenSSH),
}


@pytest.mark.parametrize("form", list(FORMS))
def test_a_private_key_in_any_common_form_registers_as_its_declared_type(stack, form):
    key_type, pem_form = FORMS[form]
    sim_key = stack.simulator.add_key(key_type=key_type, permissions=TRADE, ip_restrict=True)
    pasted = _reformat(sim_key.secret, pem_form)
    response = submit_registration(
        bot_client(stack),
        label=form,
        api_key=sim_key.api_key,
        secret=pasted,
        key_type=key_type,
        purpose="trading",
    )
    assert response.status_code == 200
    assert response.json().get("response_action") == "update", response.text
    with Session(stack.services.engine) as session:
        (stored,) = session.exec(select(ApiKey)).all()
    assert (stored.label, stored.key_type) == (form, key_type)
    assert stored.permissions_json["enableSpotAndMarginTrading"] is True
    log = stack.simulator.request_log
    assert (RESTRICTIONS, 200) in [(r.path, r.status) for r in log]
    assert all(r.method == "GET" and r.path in READ_ENDPOINTS for r in log)
    assert all(r.status == 200 for r in log if r.path == RESTRICTIONS)
