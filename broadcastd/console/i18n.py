"""Languages: gettext catalogs read from Babel `.po` files, one Jinja2 environment per language.

The `.po` files under `locale/<lang>/LC_MESSAGES/console.po` are what a translator edits; they
are compiled in memory at start-up, so there is no `.mo` file to forget to rebuild. Message ids
are English; Vietnamese is the default language of every page.
"""

from __future__ import annotations

import datetime as dt
import gettext
import io
from pathlib import Path
from typing import TYPE_CHECKING, Final

import jinja2
from babel.dates import format_date
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

HERE = Path(__file__).resolve().parent
LOCALE_DIR: Final = HERE / "locale"
TEMPLATE_DIR: Final = HERE / "templates"
LANGS: Final = ("vi", "en")
DEFAULT_LANG: Final = "vi"
DOMAIN: Final = "console"


def N_(message: str) -> str:  # noqa: N802 - the gettext convention extractors look for
    """Mark a message id that templates translate from a variable (`_(state)`)."""
    return message


# Words that reach templates as data: states, roles, priorities, slot names, report kinds, what a
# speaker said of the newest signing key.
DATA_WORDS: Final = (
    N_("online"),
    N_("stale"),
    N_("offline"),
    N_("unknown"),
    N_("viewer"),
    N_("operator"),
    N_("approver"),
    N_("normal"),
    N_("priority"),
    N_("emergency"),
    N_("noon"),
    N_("afternoon"),
    N_("live"),
    N_("exercise"),
    N_("health"),
    N_("agriculture"),
    N_("policy"),
    N_("weather"),
    N_("announcement"),
    N_("general"),
    N_("confirmed"),
    N_("pending"),
    N_("refused"),
)


def catalog_path(lang: str) -> Path:
    return LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def translations(lang: str) -> gettext.GNUTranslations:
    with catalog_path(lang).open("rb") as po:
        catalog = read_po(po, locale=lang, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def pick(lang: str | None) -> str:
    return lang if lang in LANGS else DEFAULT_LANG


def environments(tz: ZoneInfo) -> dict[str, jinja2.Environment]:
    """One environment per language: the catalog installed, escaping on for every template."""
    envs: dict[str, jinja2.Environment] = {}
    for lang in LANGS:
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            extensions=["jinja2.ext.i18n"],
            trim_blocks=True,
            lstrip_blocks=True,
        )
        trans = translations(lang)
        env.install_gettext_translations(trans, newstyle=True)  # type: ignore[attr-defined]
        env.filters.update(_filters(lang, tz))
        env.globals["lang"] = lang
        envs[lang] = env
    return envs


def _filters(lang: str, tz: ZoneInfo) -> dict[str, object]:
    def local(ts: float | None) -> dt.datetime | None:
        return None if ts is None else dt.datetime.fromtimestamp(ts, tz=tz)

    def when(ts: float | dt.datetime | None) -> str:
        moment = ts if isinstance(ts, dt.datetime) else local(ts)
        return "-" if moment is None else moment.astimezone(tz).strftime("%H:%M %d/%m/%Y")

    def clock(moment: dt.datetime) -> str:
        return moment.astimezone(tz).strftime("%H:%M")

    def day(value: dt.date | str) -> str:
        date = dt.date.fromisoformat(value) if isinstance(value, str) else value
        return format_date(date, "EEEE d/M/yyyy", locale=lang).capitalize()

    def duration(seconds: float | None) -> str:
        if seconds is None:
            return "-"
        total = round(seconds)
        if total >= 3600:
            return f"{total // 3600}h{total % 3600 // 60:02d}"
        return f"{total // 60}:{total % 60:02d}"

    return {"when": when, "clock": clock, "day": day, "duration": duration}
