"""System checks for the run-as settings: bad values are errors; on `check --deploy`, a warning when
jobs would run as the server's own account or as root."""

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from scheduling import runas


@register(Tags.security)
def check_run_as_settings(app_configs=None, **kwargs) -> list:
    if settings.GPUQ_RUN_AS not in runas.MODES:
        return [
            Error(
                f"GPUQ_RUN_AS={settings.GPUQ_RUN_AS!r} is not one of {', '.join(runas.MODES)}.",
                hint="auto: an unprivileged account (GPUQ_RUN_AS_ACCOUNT); user: each user's own Unix "
                "account; account: GPUQ_RUN_AS_ACCOUNT.",
                id="gpuq.E030",
            )
        ]
    return []


@register(Tags.security, deploy=True)
def check_run_as_deploy(app_configs=None, **kwargs) -> list:
    if settings.GPUQ_RUN_AS not in runas.MODES:
        return []  # reported by check_run_as_settings
    found = []
    if settings.GPUQ_RUN_AS == runas.ACCOUNT or (settings.GPUQ_RUN_AS == runas.AUTO and not runas.shared()):
        try:
            runas.lookup(settings.GPUQ_RUN_AS_ACCOUNT)
        except runas.RunAsError:
            found.append(
                Error(
                    f"GPUQ_RUN_AS_ACCOUNT={settings.GPUQ_RUN_AS_ACCOUNT!r}: there is no such Unix "
                    "account on this machine; jobs cannot run.",
                    hint="Create it (useradd --system --no-create-home --shell /usr/sbin/nologin NAME) "
                    "or name another.",
                    id="gpuq.E031",
                )
            )
    server = runas.server_account()
    if runas.shared() or (settings.GPUQ_RUN_AS == runas.ACCOUNT and _resolves_to(server.uid)):
        found.append(
            Warning(
                f"jobs run as the server's account {server.username}: anyone who can submit can read "
                "the server's files (database, secrets).",
                hint="Run gpuq_node as root so that jobs run as another account (GPUQ_RUN_AS), or give "
                "submit rights only to people you would give this account to.",
                id="gpuq.W030",
            )
        )
    if settings.GPUQ_RUN_JOBS_AS_ROOT_UNSAFE:
        found.append(
            Warning(
                "GPUQ_RUN_JOBS_AS_ROOT_UNSAFE is on: a job may run as root and then owns the machine "
                "and the server.",
                hint="Turn it off and run jobs as an unprivileged account (GPUQ_RUN_AS).",
                id="gpuq.W031",
            )
        )
    return found


def _resolves_to(uid: int) -> bool:
    try:
        return runas.lookup(settings.GPUQ_RUN_AS_ACCOUNT).uid == uid
    except runas.RunAsError:
        return False
