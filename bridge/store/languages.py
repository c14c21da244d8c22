"""The language each person chose with `/lang` (the personlanguage table), by blind index."""

from __future__ import annotations

from sqlmodel import Session, col, delete, select

from bridge.models import PersonLanguage
from bridge.ports import Address
from bridge.privacy import Sealer


class Languages:
    """Named queries on people's chosen languages."""

    def of(self, s: Session, account_index: str) -> str | None:
        """The language this person chose, or None when they chose none."""
        return s.exec(
            select(PersonLanguage.language).where(col(PersonLanguage.account_index) == account_index)
        ).first()

    def of_address(self, s: Session, sealer: Sealer, address: Address) -> str | None:
        """The language the person at `address` chose, or None (found by their blind index)."""
        return self.of(s, sealer.address_index(address))

    def row(self, s: Session, account_index: str) -> PersonLanguage | None:
        """This person's row (to change their choice), or None."""
        query = select(PersonLanguage).where(col(PersonLanguage.account_index) == account_index)
        return s.exec(query).first()

    def forget(self, s: Session, account_index: str) -> None:
        """Remove this person's choice (`/forgetme`)."""
        s.exec(delete(PersonLanguage).where(col(PersonLanguage.account_index) == account_index))
