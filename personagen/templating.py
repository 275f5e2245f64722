"""One Jinja environment for every prompt and document template (templates/, or a user folder first)."""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

import jinja2

from personagen.errors import BadInput
from personagen.resources import templates_dir


class _CheckedTemplate(jinja2.Template):
    """A template whose render reports an undefined variable (StrictUndefined) as BadInput naming the file."""

    def render(self, *args: object, **kwargs: object) -> str:
        try:
            return super().render(*args, **kwargs)
        except jinja2.UndefinedError as e:
            raise BadInput(f"{self.filename or self.name}: template uses an undefined variable ({e.message})") from None


@functools.lru_cache(maxsize=16)
def environment(user_dir: str | None = None) -> jinja2.Environment:
    """A cached Jinja environment; a user's --templates DIR overrides same-named shipped templates."""
    paths = []
    if user_dir:
        if not Path(user_dir).is_dir():
            raise BadInput(f"{user_dir}: templates directory does not exist")
        paths.append(str(user_dir))
    paths.append(str(templates_dir()))
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(paths),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        autoescape=False,
    )
    env.template_class = _CheckedTemplate
    return env


def get_template(name: str, user_dir: str | os.PathLike | None = None) -> jinja2.Template:
    """Load a template by file name (e.g. "elicit/system.j2"); BadInput naming it if it is missing."""
    try:
        return environment(str(user_dir) if user_dir else None).get_template(name)
    except jinja2.TemplateNotFound:
        raise BadInput(f"template {name!r} not found in {user_dir or templates_dir()}") from None
    except jinja2.TemplateSyntaxError as e:
        raise BadInput(f"{e.filename or name}:{e.lineno}: template syntax error: {e.message}") from None


def render(name: str, user_dir: str | os.PathLike | None = None, **ctx: object) -> str:
    """Render a template to text (trailing whitespace stripped)."""
    return get_template(name, user_dir).render(**ctx).strip()


def template_hash(name: str, user_dir: str | os.PathLike | None = None) -> str:
    """sha256 of a template's source, recorded in manifests and dataset cards for provenance."""
    t = get_template(name, user_dir)
    return hashlib.sha256(Path(t.filename).read_bytes()).hexdigest()
