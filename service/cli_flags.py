"""The commands' setting flags, made from the Settings model: each is declared once, as a setting.

A setting's flag is its name in kebab case (or settings.FLAG_NAMES), its help is the setting's
description with its choices and its default, and its type is the setting's (a list is a
repeatable flag whose items may be comma lists; a bool is --x/--no-x; a Literal's values are
shown, and checked where every source's value is: in Settings). A flag defaults to unset, so that
the environment, the config file and then the setting's default apply. A renamed setting's old
flag still works, hidden from the help (renamed_settings).
"""

from __future__ import annotations

import functools
import inspect
import types
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import typer
from pydantic import SecretStr
from pydantic.fields import FieldInfo

from whisper_transcriber.service.renamed_settings import RENAMED
from whisper_transcriber.service.settings import FLAGGED, Settings, flag_name

Command = TypeVar("Command", bound=Callable[..., Any])

# Choices shown in the flag's metavar (<auto|cpu|cuda>) when they are this short together; longer
# lists are told in the help text only, so that the option column stays narrow.
METAVAR_CHOICES_CHARS = 24
# Flag parameters named after a renamed setting's old name, and the setting they set.
PARAM_TO_SETTING = dict(RENAMED)


def settings_flags(*names: str) -> Callable[[Command], Command]:
    """Give a command a flag for each of these settings, after its arguments and before its own
    options. The command reads them through settings_given(ctx), not as parameters."""
    unknown = set(names) - FLAGGED
    if unknown:
        raise ValueError(f"not flagged settings (settings.FLAGGED): {sorted(unknown)}")

    def decorate(command: Command) -> Command:
        own = list(inspect.signature(command, eval_str=True).parameters.values())
        generated = [_parameter(name, name) for name in names]
        generated += [
            _parameter(old, new, hidden=True) for old, new in RENAMED.items() if new in names
        ]
        leading = [p for p in own if p.default is inspect.Parameter.empty]
        trailing = [p for p in own if p.default is not inspect.Parameter.empty]
        taken = {p.name for p in generated}
        if taken & {p.name for p in own}:
            raise ValueError(f"{command.__name__} declares a setting flag of its own")

        @functools.wraps(command)
        def with_flags(*args: Any, **kwargs: Any) -> Any:
            return command(*args, **{k: v for k, v in kwargs.items() if k not in taken})

        parameters = [*leading, *generated, *trailing]
        with_flags.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        with_flags.__annotations__ = {p.name: p.annotation for p in parameters}
        return with_flags  # type: ignore[return-value]

    return decorate


def settings_given(ctx: typer.Context) -> dict[str, Any]:
    """The settings this command's flags were given (old names of renamed settings as given, for
    Settings to read and note as deprecated); unset flags are left out."""
    given: dict[str, Any] = {}
    for name, value in ctx.params.items():
        setting = name in Settings.model_fields or name in RENAMED
        if setting and value not in (None, [], ()):
            given[name] = list(value) if isinstance(value, tuple) else value
    return given


def flag_given(ctx: typer.Context, setting: str) -> bool:
    """Whether this command's flag for the setting (or its old name's) was given."""
    names = [setting, *(old for old, new in RENAMED.items() if new == setting)]
    return any(ctx.params.get(name) not in (None, [], ()) for name in names)


def flag_decls(name: str) -> list[str]:
    """A setting's flag as the help writes it: ['--port'], or ['--vad-filter', '--no-vad-filter']."""
    flag = flag_name(name)
    if _value_type(Settings.model_fields[name].annotation)[0] is bool:
        return [flag, f"--no-{flag.removeprefix('--')}"]
    return [flag]


def _parameter(param: str, setting: str, hidden: bool = False) -> inspect.Parameter:
    field = Settings.model_fields[setting]
    value_type, repeatable = _value_type(field.annotation)
    flag = flag_name(param)
    decls = [f"{flag}/--no-{flag.removeprefix('--')}"] if value_type is bool else [flag]
    metavar = _metavar(field.annotation)
    option = typer.Option(
        *decls,
        help=_help(field, repeatable, choices_shown=metavar is not None),
        # One value per flag: <str> rather than Typer's <list[str]> for a repeatable one.
        metavar=metavar or ("<str>" if repeatable and value_type is str else None),
        show_default=False,  # an unset flag is not the default: the help says what is
        hidden=hidden,
    )
    kind = list[value_type] if repeatable else value_type  # type: ignore[valid-type]
    return inspect.Parameter(
        param,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        default=None,
        annotation=Annotated[kind | None, option],
    )


def _value_type(annotation: Any) -> tuple[type, bool]:
    """The type a flag's value is read as, and whether it is repeatable (a list setting)."""
    args = [arg for arg in get_args(annotation) if arg is not type(None)]
    if get_origin(annotation) in (Union, types.UnionType):
        return _value_type(args[0])
    if get_origin(annotation) is list:
        item, _ = _value_type(args[0])
        return (item if item in (str, Path) else str), True
    if get_origin(annotation) is Literal or annotation is SecretStr:
        return str, False
    if annotation in (str, int, float, bool, Path):
        return annotation, False
    return str, False  # a structured value (an inbox) is written as text, and parsed by Settings


def _metavar(annotation: Any) -> str | None:
    values = choices(annotation)
    if values and len("|".join(values)) <= METAVAR_CHOICES_CHARS:
        return f"<{'|'.join(values)}>"
    return None


def meaning(field: FieldInfo) -> str:
    """A setting's description, with its choices where it does not name them all."""
    text = field.description or ""
    values = choices(field.annotation)
    if values and not all(value in text for value in values):
        text = f"{text}; one of {', '.join(values)}" if text else f"one of {', '.join(values)}"
    return text


def choices(annotation: Any) -> list[str]:
    """The values a Literal setting (or a list of one) accepts."""
    if get_origin(annotation) is Literal:
        return [str(arg) for arg in get_args(annotation)]
    found: list[str] = []
    for arg in get_args(annotation):
        found += choices(arg)
    return found


def _help(field: FieldInfo, repeatable: bool, choices_shown: bool) -> str:
    text = (field.description or "") if choices_shown else meaning(field)
    if repeatable:
        text += " (repeatable)"
    default = _shown_default(field.default)
    return f"{text}.  [default: {default}]" if default is not None else f"{text}."


def _shown_default(default: Any) -> str | None:
    if default is None or default in ([], ()):
        return None
    if isinstance(default, bool):
        return "on" if default else "off"
    if isinstance(default, Iterable) and not isinstance(default, str):
        return ",".join(str(getattr(item, "path", item)) for item in default)
    if isinstance(default, float):
        return f"{default:g}"
    return str(default)
