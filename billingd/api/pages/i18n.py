"""Languages of the pages: gettext catalogs compiled by Babel, one Jinja2 environment per language.

English is the source language (the msgids). Every other language is a
``locale/<code>/LC_MESSAGES/messages.po`` with its compiled ``.mo`` beside it;
an ISP adds its own by adding a directory (see the README). The language is
the visitor's choice (a cookie set by the language switch), else the best
match of ``Accept-Language``, else English.
"""

from functools import cached_property
from pathlib import Path

from babel import Locale
from babel.support import NullTranslations, Translations
from jinja2 import Environment, FileSystemLoader, select_autoescape

HERE = Path(__file__).resolve().parent
LOCALE_DIR = HERE / "locale"
TEMPLATE_DIR = HERE / "templates"
SOURCE_LANGUAGE = "en"
LANGUAGE_COOKIE = "radbill_lang"


def available_languages() -> list[str]:
    """English first, then every language with a compiled catalog."""
    compiled = sorted(path.parent.parent.name for path in LOCALE_DIR.glob("*/LC_MESSAGES/messages.mo"))
    return [SOURCE_LANGUAGE, *compiled]


def native_name(code: str) -> str:
    """What the language calls itself ("বাংলা"), for the language switch."""
    return Locale.parse(code).get_display_name(code).capitalize()


def best_language(cookie: str | None, accept_language: str | None, languages: list[str]) -> str:
    """The visitor's choice, else the first Accept-Language we have, else English."""
    if cookie in languages:
        return cookie
    weighted = []
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, parameters = part.strip().partition(";")
        quality = 1.0
        if parameters.strip().startswith("q="):
            try:
                quality = float(parameters.strip()[2:])
            except ValueError:
                quality = 0.0
        weighted.append((-quality, position, tag.strip().lower()))
    for _, _, tag in sorted(weighted):
        base = tag.split("-")[0]
        if base in languages:
            return base
    return SOURCE_LANGUAGE


class Catalogs:
    """One Jinja2 environment per language, built once."""

    def __init__(self, globals_: dict, filters: dict):
        self._globals = globals_
        self._filters = filters
        self._environments: dict[str, Environment] = {}
        self._translations: dict[str, NullTranslations] = {}

    @cached_property
    def languages(self) -> list[str]:
        return available_languages()

    def translations(self, language: str) -> NullTranslations:
        if language not in self._translations:
            self._translations[language] = (
                NullTranslations()
                if language == SOURCE_LANGUAGE
                else Translations.load(str(LOCALE_DIR), [language], domain="messages")
            )
        return self._translations[language]

    def environment(self, language: str) -> Environment:
        if language not in self._environments:
            environment = Environment(
                loader=FileSystemLoader(str(TEMPLATE_DIR)),
                autoescape=select_autoescape(["html", "svg"]),
                extensions=["jinja2.ext.i18n"],
                trim_blocks=True,
                lstrip_blocks=True,
            )
            environment.install_gettext_translations(self.translations(language), newstyle=True)
            environment.globals.update(self._globals)
            environment.filters.update(self._filters)
            self._environments[language] = environment
        return self._environments[language]

    def gettext(self, language: str):
        """The translating function for messages built in Python (flash lines, chart labels)."""
        return self.translations(language).gettext


# --- catalogs: extract, update, compile (python -m billingd.api.pages.i18n) ---------------

# Messages built in Python are marked with _() (translated at once) or N_() (translated later).
KEYWORDS = {"_": None, "N_": None, "gettext": None, "ngettext": (1, 2)}
METHODS = [("templates/**.html", "jinja2"), ("**.py", "python")]
OPTIONS = {"templates/**.html": {"extensions": "jinja2.ext.i18n", "trimmed": "true"}}


def N_(message: str) -> str:
    """Marks a message for extraction where it is defined; it is translated where it is shown."""
    return message


def extract_messages():
    """Every translatable message of the templates and page handlers, as a Babel catalog."""
    from babel.messages.catalog import Catalog
    from babel.messages.extract import extract_from_dir

    catalog = Catalog(project="radbill", charset="utf-8")
    for filename, line, message, comments, context in extract_from_dir(
        str(HERE), METHODS, keywords=KEYWORDS, options_map=OPTIONS
    ):
        catalog.add(message, None, [(filename, line)], auto_comments=comments, context=context)
    return catalog


def po_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"


def read_po(language: str):
    from babel.messages.pofile import read_po as read

    with po_path(language).open("rb") as po_file:
        return read(po_file, locale=language)


def compiled(language: str) -> bytes:
    """The .mo the .po compiles to."""
    import io

    from babel.messages.mofile import write_mo

    out = io.BytesIO()
    write_mo(out, read_po(language))
    return out.getvalue()


def update_catalogs() -> None:
    """Merge new messages into every language's .po (keeping translations) and compile each .mo."""
    from babel.messages.pofile import write_po

    template = extract_messages()
    for language in available_languages()[1:]:
        catalog = read_po(language)
        catalog.update(template, no_fuzzy_matching=True)
        with po_path(language).open("wb") as po_file:
            write_po(po_file, catalog, width=110, omit_header=False, sort_output=True, include_lineno=False)
        po_path(language).with_suffix(".mo").write_bytes(compiled(language))


if __name__ == "__main__":
    update_catalogs()
