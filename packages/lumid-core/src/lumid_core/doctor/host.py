"""A host plugin's doctor from its facts and its own checks: the shared scaffolding."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from lumid_core.permissions import Policy
from lumid_core.settings import LumidSettings

from .checks import check_plugins_listed
from .context import DoctorContext
from .report import Check

__all__ = ["PluginDoctor"]


@dataclass(frozen=True, slots=True)
class PluginDoctor[S: LumidSettings]:
    """A `HostDoctor` made of a host's facts and a function with its own checks.

    `checks` hands `host_checks` the settings as the host's class `S`, and puts
    first the line saying whether `plugins_var` (e.g. FLOWMESH_PLUGINS) loads
    `plugin`, when that variable is set.
    """

    host: str
    """The host's name, equal to the entry-point name (`flowmesh`)."""
    label: str
    """The host's name as its operators write it (`FlowMesh`)."""
    settings_class: type[S]
    policy: Policy
    plugins_var: str
    """The host's variable listing the plugins it loads."""
    plugin: str
    """The plugin's module name, as that list must name it."""
    host_checks: Callable[[DoctorContext, S], Awaitable[Sequence[Check]]]

    async def checks(self, ctx: DoctorContext) -> Sequence[Check]:
        """The plugin-list line (when the variable is set), then `host_checks`."""
        settings = ctx.settings
        if not isinstance(settings, self.settings_class):  # pragma: no cover - core's contract
            raise TypeError("lumid doctor passed settings of the wrong class")
        out = list(await self.host_checks(ctx, settings))
        listed = check_plugins_listed(ctx.environ, self.plugins_var, self.plugin, self.label)
        return out if listed is None else [listed, *out]
