"""Who may work on which ticket, and who may pop a ticket onto which seat.

An operator works on the tickets they hold (claimed, screen-popped to their seat, or
reassigned to them by a 班长) and on tickets nobody holds in the skill queues they serve:
all queues when their account names none, as ``SeatQueue.claim`` does. A 班长 or 管理员
may act on any ticket and reassign it. The call controller's service identity follows the
operator's rule for ticket work; its own rights (filing call evidence, popping a ticket
onto any seat) are granted where those requests arrive.

The store runs the check inside the transaction that changes the ticket, under the row
lock (see ``tickets.ticket.Guard``), so a ticket taken meanwhile is refused, not changed.
"""

from __future__ import annotations

from tickets.accounts import Account
from tickets.ticket import Guard, Holding, TicketForbidden


def may_work_on(account: Account, holding: Holding) -> bool:
    if account.leads_shift:
        return True
    if holding.assigned_to is not None:
        return holding.assigned_to == account.username
    if holding.seat is not None:  # popped to a seat where nobody was logged in
        return holding.seat == account.seat
    return not account.skills or holding.skill in account.skills


def refusal(holding: Holding) -> str:
    """Why an operator may not touch this ticket, in words for the operator."""
    if holding.assigned_to is not None:
        return f"本工单由 {holding.assigned_to} 办理，您无权操作；如需接手请联系班长改派"
    if holding.seat is not None:
        return f"本工单已转到坐席 {holding.seat}，您无权操作；如需接手请联系班长改派"
    return "本工单不在您负责的技能队列中，您无权操作"


def guard_for(account: Account) -> Guard:
    def check(holding: Holding) -> None:
        if not may_work_on(account, holding):
            raise TicketForbidden(refusal(holding))

    return check


def check_may_pop(requester: Account, seat: str, holding: Holding) -> None:
    """A screen pop hands the ticket to ``seat``: an operator may only take it to their own
    seat, and only a ticket they may work on; the controller and 班长 may pop anywhere."""
    if requester.is_controller or requester.leads_shift:
        return
    if seat != requester.seat:
        raise TicketForbidden("只能把工单弹屏到您自己的坐席")
    guard_for(requester)(holding)


def check_sees_overdue_list(account: Account) -> None:
    """The 超期工单 list (every open ticket past or near its deadline) is the 班长's."""
    check_leads_shift(account, "查看超期工单")


def check_leads_shift(account: Account, step: str) -> None:
    """Steps only a 班长 or 管理员 takes (改派, 督办); ``step`` names it for the message."""
    if not account.leads_shift:
        raise TicketForbidden(f"只有班长或管理员可以{step}")
