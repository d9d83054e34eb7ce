"""Messages as people read them: one template per message kind, plain text and HTML (Jinja2).

Templates live in activities/templates as `<kind>.txt` and `<kind>.html`; a kind without its own uses
`message.*`. A deployment may override any of them by file name (delivery `templates_dir`). HTML is
autoescaped: a customer's name or a note cannot inject markup.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader, StrictUndefined, select_autoescape

from escalation.domain.rules.step import Message

GENERIC = "message"


class Rendered(NamedTuple):
    subject: str
    text: str
    html: str


class Templates:
    def __init__(self, override_dir: Path | None = None) -> None:
        loaders = [FileSystemLoader(override_dir)] if override_dir else []
        self.env = Environment(
            loader=ChoiceLoader([*loaders, PackageLoader("activities", "templates")]),
            autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
            undefined=StrictUndefined,
            keep_trailing_newline=True,
        )

    def render(self, message: Message) -> Rendered:
        context = dict(
            message=message,
            to=message.to,
            case_id=message.case_id,
            key=message.key,
            kind=message.kind.value,
            subject=message.subject,
            body=message.body,
            paragraphs=[p.strip() for p in message.body.split("\n\n") if p.strip()],
        )
        kind = message.kind.value
        return Rendered(
            subject=message.subject,
            text=self.env.select_template([f"{kind}.txt", f"{GENERIC}.txt"]).render(context).strip() + "\n",
            html=self.env.select_template([f"{kind}.html", f"{GENERIC}.html"]).render(context),
        )
