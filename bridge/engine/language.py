"""`/lang`, and the language a person is answered in: the one they chose with `/lang`, else the
one their platform reports (Telegram's `language_code`), else `general.language`.

The choice is stored per person against their blind index, with their address sealed so that
`rotate-key` can re-index it; `/forgetme` erases it.
"""

from __future__ import annotations

from sqlmodel import Session

from bridge.commands import LangArgs
from bridge.engine.context import Context
from bridge.engine.core import EngineCore
from bridge.i18n import _, current_language, language_name, languages, speaking
from bridge.models import PersonLanguage
from bridge.ports import Reply


def language_for(core: EngineCore, s: Session, index: str, reported: str | None = None) -> str | None:
    """The language to answer this person in (None: the default language): their `/lang`
    choice first, then what their platform reported."""
    return core.store.languages.of(s, index) or reported


def cmd_lang(ctx: Context, cmd: LangArgs) -> list[Reply]:
    """`/lang [language]`."""
    choices = ", ".join(f"/lang {lang} ({language_name(lang)})" for lang in languages())
    if cmd.language is None:
        return [
            Reply(
                _("You are answered in {language}. To change it: {choices}.").format(
                    language=language_name(current_language()), choices=choices
                )
            )
        ]
    row = ctx.store.languages.row(ctx.s, ctx.actor.index)
    if row is None:
        row = PersonLanguage(
            platform=ctx.actor.address.platform,
            account_index=ctx.actor.index,
            sealed=b"",  # sealed to the row's id once it has one
            language=cmd.language,
            updated_at=ctx.clock(),
        )
        ctx.s.add(row)
        ctx.s.flush()
        row.sealed = ctx.sealer.seal(ctx.actor.address, table="personlanguage", row_id=row.id or 0)
    row.language, row.updated_at = cmd.language, ctx.clock()
    ctx.s.add(row)
    with speaking(cmd.language):
        return [Reply(_("From now on I answer you in English."))]
