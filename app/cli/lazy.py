"""Commands whose modules are imported when they are used, not when ``referee`` starts.

Each command module pulls in what its command needs (rich's Markdown, the
export and report machinery, the generation and round runs, ...): imported
all at once, every command, ``referee label`` included, would pay for all of
them before doing anything. :class:`LazyGroup` knows every command's name,
module and attribute; a command's module is imported the first time the
command is looked up: to run it, or to list it in ``referee --help``.

A command is built exactly as ``cli.command(name)(function)`` or
``cli.add_typer(app, name=name)`` would have built it, so its options, help
and behaviour are the same as when it was registered up front.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, ClassVar

import typer
import typer.main
from typer.core import TyperGroup

if TYPE_CHECKING:
    from typer._click import Command

Where = tuple[str, str]
"""A command's module (under ``app.cli``) and the attribute there: a function or a Typer."""


class LazyGroup(TyperGroup):
    """A typer group whose commands, listed in :attr:`commands_at`, are imported on first use."""

    commands_at: ClassVar[Mapping[str, Where]] = {}
    """Command name → where it is defined, in the order ``--help`` lists them."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        # click reads self.commands for lookups, listings and "did you mean" hints;
        # the names are all known up front, the commands are built as they are read.
        self.commands = LazyCommands(self.commands, self.commands_at, self._build)

    def _build(self, name: str, where: Where) -> Command:
        module, attribute = where
        target = getattr(importlib.import_module(f"app.cli.{module}"), attribute)
        holder = typer.Typer(rich_markup_mode=self.rich_markup_mode)
        if isinstance(target, typer.Typer):
            holder.add_typer(target, name=name)
        else:
            holder.command(name)(target)
        return typer.main.get_group(holder).commands[name]


class LazyCommands(MutableMapping[str, "Command"]):
    """Name → command; a command not built yet is built by ``build`` when it is first read."""

    def __init__(
        self,
        built: Mapping[str, Command],
        where: Mapping[str, Where],
        build: Callable[[str, Where], Command],
    ) -> None:
        self._entries: dict[str, Command | Where] = {**where, **built}
        self._build = build

    def __getitem__(self, name: str) -> Command:
        entry = self._entries[name]
        if isinstance(entry, tuple):
            entry = self._entries[name] = self._build(name, entry)
        return entry

    def __setitem__(self, name: str, command: Command) -> None:
        self._entries[name] = command

    def __delitem__(self, name: str) -> None:
        del self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries  # without building it
