"""The command table: each family of commands lives in its own module."""
from __future__ import annotations

from ..session import AUTH, NOT_AUTH, SELECTED, CommandSpec
from .. import search_updates
from . import any_state, append, auth, fetch, idle, mailboxes, notify, quota, search, selected, sort, store, thread, urlauth

ANY = (NOT_AUTH, AUTH, SELECTED)
AUTHED = (AUTH, SELECTED)

COMMANDS: dict[str, CommandSpec] = {
    "CAPABILITY": CommandSpec(any_state.capability, ANY),
    "NOOP": CommandSpec(any_state.noop, ANY),
    "LOGOUT": CommandSpec(any_state.logout, ANY),
    "ID": CommandSpec(any_state.id_command, ANY),
    "STARTTLS": CommandSpec(auth.starttls, (NOT_AUTH,)),
    "LOGIN": CommandSpec(auth.login, (NOT_AUTH,)),
    "AUTHENTICATE": CommandSpec(auth.authenticate, (NOT_AUTH,)),
    "ENABLE": CommandSpec(any_state.enable, AUTHED),
    "SELECT": CommandSpec(mailboxes.select, AUTHED),
    "EXAMINE": CommandSpec(mailboxes.examine, AUTHED),
    "CREATE": CommandSpec(mailboxes.create, AUTHED),
    "DELETE": CommandSpec(mailboxes.delete, AUTHED),
    "RENAME": CommandSpec(mailboxes.rename, AUTHED),
    "SUBSCRIBE": CommandSpec(mailboxes.subscribe, AUTHED),
    "UNSUBSCRIBE": CommandSpec(mailboxes.unsubscribe, AUTHED),
    "LIST": CommandSpec(mailboxes.list_command, AUTHED),
    "LSUB": CommandSpec(mailboxes.lsub, AUTHED),
    "NAMESPACE": CommandSpec(mailboxes.namespace, AUTHED),
    "STATUS": CommandSpec(mailboxes.status, AUTHED),
    "APPEND": CommandSpec(append.append, AUTHED),
    "GETQUOTA": CommandSpec(quota.getquota, AUTHED),
    "GETQUOTAROOT": CommandSpec(quota.getquotaroot, AUTHED),
    "SETQUOTA": CommandSpec(quota.setquota, AUTHED),
    "IDLE": CommandSpec(idle.idle, AUTHED),
    "NOTIFY": CommandSpec(notify.notify, AUTHED),
    "GENURLAUTH": CommandSpec(urlauth.genurlauth, AUTHED),
    "URLFETCH": CommandSpec(urlauth.urlfetch, AUTHED),
    "RESETKEY": CommandSpec(urlauth.resetkey, AUTHED),
    "CHECK": CommandSpec(selected.check, (SELECTED,)),
    "CLOSE": CommandSpec(selected.close, (SELECTED,)),
    "UNSELECT": CommandSpec(selected.unselect, (SELECTED,)),
    "EXPUNGE": CommandSpec(selected.expunge, (SELECTED,), uid_ok=True),
    "COPY": CommandSpec(selected.copy, (SELECTED,), uid_ok=True),
    "MOVE": CommandSpec(selected.move, (SELECTED,), uid_ok=True),
    "FETCH": CommandSpec(fetch.fetch, (SELECTED,), expunge_ok=False, uid_ok=True),
    "STORE": CommandSpec(store.store, (SELECTED,), expunge_ok=False, uid_ok=True),
    "SEARCH": CommandSpec(search.search, (SELECTED,), expunge_ok=False, uid_ok=True),
    "SORT": CommandSpec(sort.sort, (SELECTED,), expunge_ok=False, uid_ok=True),
    "THREAD": CommandSpec(thread.thread, (SELECTED,), expunge_ok=False, uid_ok=True),
    "CANCELUPDATE": CommandSpec(search_updates.cancelupdate, (SELECTED,)),
}
