"""Dashboard pages: a guild's members (OWNER / ADMIN / USER), for owners and admins: search, add, change a role
in place, remove."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Q, QuerySet
from django.forms import Form
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from accounts.models import User
from guilds import dashboard, services
from guilds.dashboard import HtmxHttpRequest
from guilds.forms import MemberAddForm, MemberRoleForm, role_field
from guilds.models import Guild, Membership, parse_discord_id

ADMIN = Membership.Role.ADMIN


def _known_users(actor: User, guild: Guild) -> list[User]:
    """People the actor already manages in their other guilds: the "pick a known user" list. Never every user
    of the instance, which would leak who uses Parley elsewhere."""
    managed = Guild.objects.filter(
        memberships__user=actor, memberships__role__in=[Membership.Role.OWNER, ADMIN]
    ).exclude(pk=guild.pk)
    return list(
        User.objects.filter(memberships__guild__in=managed)
        .exclude(memberships__guild=guild)
        .distinct()
        .order_by("username")[:100]
    )


def _search(request: HtmxHttpRequest) -> str:
    """The member search, from the page's query string or, for a change made while searching, the form. Without
    NUL bytes, which PostgreSQL refuses in a query outright."""
    return (request.GET.get("q") or request.POST.get("q") or "").replace("\x00", "").strip()[:100]


def _matching(guild: Guild, query: str) -> QuerySet[Membership]:
    """Members whose username, Discord display name or Discord id matches ``query``."""
    members = guild.memberships.select_related("user")
    if not query:
        return members
    found = Q(user__username__icontains=query) | Q(user__global_name__icontains=query)
    if (discord_id := parse_discord_id(query)) is not None:
        found |= Q(user__discord_id=discord_id)
    return members.filter(found)


def _render(
    request: HtmxHttpRequest,
    guild: Guild,
    acting: Membership,
    *,
    form: MemberAddForm | None = None,
    status: int = 200,
) -> HttpResponse:
    query = _search(request)
    rows = sorted(_matching(guild, query), key=lambda m: (-m.rank, m.user.display_name.lower()))
    context: dict[str, Any] = {
        "guild": guild,
        "membership": acting,
        "section": "members",
        "query": query,
        "rows": [(m, acting.can_change(m)) for m in rows],
        "roles": role_field(acting).choices,
        "form": form or MemberAddForm(acting=acting),
        "known_users": _known_users(request.user, guild) if isinstance(request.user, User) else [],
    }
    return dashboard.render_page(request, "guilds/members.html", "members", context, status=status)


def _done(request: HtmxHttpRequest, guild: Guild, acting: Membership, message: str) -> HttpResponse:
    messages.success(request, message)
    if request.htmx:
        return _render(request, guild, acting)
    return redirect("guilds:members", guild_id=guild.discord_id)


def _failed(request: HtmxHttpRequest, guild: Guild, acting: Membership, form: Form) -> HttpResponse:
    messages.error(request, dashboard.error_text(form))
    return _render(request, guild, acting, status=dashboard.INVALID)


@login_required
@require_http_methods(["GET", "POST"])
def members(request: HtmxHttpRequest, guild_id: int) -> HttpResponse:
    """GET: the member list; POST: add a member by Discord id or username."""
    guild, acting = dashboard.get_guild_for(request, guild_id, min_role=ADMIN)
    if request.method == "GET":
        return _render(request, guild, acting)
    form = MemberAddForm(request.POST, acting=acting)
    if form.is_valid():
        with dashboard.errors_on(form):
            services.member_add(
                guild=guild,
                user_or_discord_id=form.cleaned_data["user"],
                role=form.cleaned_data["role"],
                **dashboard.who(request),
            )
    if not form.errors:
        return _done(request, guild, acting, "Member added.")
    return _render(request, guild, acting, form=form, status=dashboard.INVALID)


def _confirm(
    request: HtmxHttpRequest, guild: Guild, acting: Membership, question: str
) -> HttpResponse | None:
    """The no-JavaScript confirmation step of a member change (None once confirmed, or with htmx)."""
    cancel = reverse("guilds:members", args=[guild.discord_id])
    return dashboard.confirmation(
        request, question, {"guild": guild, "membership": acting, "cancel_url": cancel}
    )


def _target(guild: Guild, member_id: int) -> Membership:
    return get_object_or_404(Membership.objects.select_related("user", "guild"), pk=member_id, guild=guild)


@login_required
@require_POST
def member_role(request: HtmxHttpRequest, guild_id: int, member_id: int) -> HttpResponse:
    guild, acting = dashboard.get_guild_for(request, guild_id, min_role=ADMIN)
    target = _target(guild, member_id)
    if asking := _confirm(request, guild, acting, f"Change the role of {target.user.display_name}?"):
        return asking
    form = MemberRoleForm(request.POST, acting=acting)
    if form.is_valid():
        with dashboard.errors_on(form):
            services.member_role_change(
                membership=target,
                role=form.cleaned_data["role"],
                **dashboard.who(request),
            )
    if not form.errors:
        return _done(
            request, guild, acting, f"{target.user.display_name} is now {form.cleaned_data['role']}."
        )
    return _failed(request, guild, acting, form)


@login_required
@require_POST
def member_remove(request: HtmxHttpRequest, guild_id: int, member_id: int) -> HttpResponse:
    guild, acting = dashboard.get_guild_for(request, guild_id, min_role=ADMIN)
    target = _target(guild, member_id)
    if asking := _confirm(
        request, guild, acting, f"Remove {target.user.display_name} from this server's dashboard?"
    ):
        return asking
    form = Form(data={})  # bound, so a service error can be added to it
    with dashboard.errors_on(form):
        services.member_remove(membership=target, **dashboard.who(request))
    if not form.errors:
        return _done(request, guild, acting, f"{target.user.display_name} was removed.")
    return _failed(request, guild, acting, form)
