"""Who may work on which ticket, and who may pop a ticket onto which seat.

An operator works on the tickets they hold (claimed, screen-popped to their seat, or
reassigned to them by a 班长) and on tickets nobody holds in the skill queues they serve:
all queues when their account names none, as ``SeatQueue.claim`` does. A 班长 or 管理员
may act on any ticket and reassign it. The call controller's service identity follows the
operator's rule for ticket work; its own rights (filing call evidence, popping a ticket
onto any seat) are granted where those requests arrive.

A 承办单位's user (role ``department``) works on none of that: it sees and acts on only
the work orders dispatched to its own unit, as 主办 (签收, 延期, 退单, 反馈) or as 协办
(a 协办意见), and never one before dispatch or after it was sent back.

The store runs the check inside the transaction that changes the ticket, under the row
lock (see ``tickets.ticket.Guard``), so a ticket taken meanwhile is refused, not changed.
"""

from __future__ import annotations

from tickets.accounts import Account
from tickets.ticket import DEPARTMENT_VISIBLE, DEPARTMENT_WORKING, Guard, Holding, TicketForbidden


def may_work_on(account: Account, holding: Holding) -> bool:
    if account.is_department:
        return False  # the hotline's work; a department has its own rules below
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


# ---- 承办单位 ----


def department_role(unit: str, holding: Holding) -> str:
    """ "lead" (主办), "assist" (协办) or "" for ``unit`` on this ticket as it stands."""
    if not unit or holding.status not in {s.value for s in DEPARTMENT_VISIBLE}:
        return ""
    if holding.department == unit:
        return "lead"
    return "assist" if unit in holding.co_departments else ""


def department_guard(unit: str, *, lead: bool) -> Guard:
    """Only the unit's own work orders; ``lead`` steps (签收, 延期, 退单, 反馈) are the
    主办's, and only while the work is with the department."""

    def check(holding: Holding) -> None:
        role = department_role(unit, holding)
        if not role:
            raise TicketForbidden("该工单未转办给本单位，无权查看或办理")
        if lead and role != "lead":
            raise TicketForbidden("本单位为协办单位，签收、延期、退单和反馈由主办单位办理")
        if lead and holding.status not in {s.value for s in DEPARTMENT_WORKING}:
            raise TicketForbidden("该工单已不在本单位办理中")

    return check
