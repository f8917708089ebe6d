"""REST API for admins to manage users, teams and levels (mounted at /api/v1/): each view parses,
checks that the caller is an admin, calls accounts.people and renders."""

from django.contrib.auth import get_user_model
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import people
from accounts.models import Level, Team
from accounts.permissions import can_administer
from queueproject.strict import StrictSerializer
from scheduling.api.paging import PAGE_PARAMETERS, CappedLimitOffset, choice, paged, refuse_nul, text

User = get_user_model()


class AdminsOnly:
    """DRF permission: gpuq admins (level admin or superuser) only."""

    message = "Only admins manage users, teams and levels."

    def has_permission(self, request, view):
        return bool(request.user and can_administer(request.user))

    def has_object_permission(self, request, view, obj):
        return self.has_permission(request, view)


_LEVEL = serializers.ChoiceField(choices=Level.choices, help_text="admin, lead, researcher or viewer")


class EmailOrBlank(serializers.EmailField):
    """An e-mail address (checked as Django checks one), or "" for none: drf-spectacular declares both
    (`oneOf`: `format: email`, or `maxLength: 0`), in answers too."""

    def __init__(self, **kwargs):
        super().__init__(allow_blank=True, **kwargs)


class UserOut(serializers.Serializer):
    username = serializers.CharField()
    email = EmailOrBlank()
    level = serializers.CharField(help_text="admin, lead, researcher or viewer (a superuser is an admin)")
    team = serializers.CharField(allow_null=True)
    unix_username = serializers.CharField(help_text="their jobs run as it when GPUQ_RUN_AS=user")
    can_submit_raw = serializers.BooleanField(help_text="may submit raw commands (admins always may)")
    is_active = serializers.BooleanField()
    is_superuser = serializers.BooleanField()
    date_joined = serializers.DateTimeField()
    last_login = serializers.DateTimeField(allow_null=True)


def _user_out(user, raw_ids: set[int]) -> dict:
    profile = getattr(user, "profile", None)  # none: a researcher without a team
    level = Level.ADMIN if user.is_superuser else profile.level if profile else Level.RESEARCHER
    return {
        "username": user.username,
        "email": user.email,
        "level": level,
        "team": profile.team.name if profile and profile.team else None,
        "unix_username": profile.unix_username if profile else "",
        "can_submit_raw": level == Level.ADMIN or (level != Level.VIEWER and user.pk in raw_ids),
        "is_active": user.is_active,
        "is_superuser": user.is_superuser,
        "date_joined": user.date_joined,
        "last_login": user.last_login,
    }


def _users_out(users) -> list[dict]:
    users = list(users)
    raw_ids = people.raw_command_holders(users)
    return [_user_out(u, raw_ids) for u in users]


def _unix_name(**kwargs):  # accounts.models.UNIX_USERNAME's rule, declared in the schema; "" is none
    return serializers.RegexField(
        r"^([a-z_][a-z0-9_.-]*[$]?)?$", required=False, allow_blank=True, max_length=32, **kwargs
    )


class UserCreateIn(StrictSerializer):
    # Django's own username rule (UnicodeUsernameValidator), so that the schema says it
    username = serializers.RegexField(r"^[\w.@+-]+\Z", max_length=150, help_text="letters, digits and @.+-_")
    password = serializers.CharField(
        required=False, write_only=True, max_length=128, help_text="none: logs in with API tokens only"
    )
    email = EmailOrBlank(required=False, default="")
    level = serializers.ChoiceField(choices=Level.choices, default=Level.RESEARCHER)
    team = serializers.CharField(required=False, allow_null=True, max_length=100, help_text="a team's name")
    unix_username = _unix_name(default="")
    can_submit_raw = serializers.BooleanField(required=False, default=False)
    is_active = serializers.BooleanField(required=False, default=True)


class UserUpdateIn(StrictSerializer):
    password = serializers.CharField(required=False, write_only=True, max_length=128)
    email = EmailOrBlank(required=False)
    level = serializers.ChoiceField(choices=Level.choices, required=False)
    team = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, max_length=100, help_text="null: no team"
    )
    unix_username = _unix_name()
    can_submit_raw = serializers.BooleanField(required=False)
    is_active = serializers.BooleanField(required=False)


class Users(APIView):
    permission_classes = [AdminsOnly]

    @extend_schema(
        parameters=[
            text("team", "only this team's members"),
            choice("level", ["", *Level.values], "only users of this level"),
            text("q", "text in the username"),
            *PAGE_PARAMETERS,
        ],
        responses=paged("UserPage", UserOut),
        operation_id="users_list",
    )
    def get(self, request):
        """Admins: every user, by name, with level, team, Unix account and raw-command permission."""
        refuse_nul(request.query_params, "team", "q")
        level = request.query_params.get("level", "")
        if level and level not in Level.values:
            return Response({"level": [f"one of {', '.join(Level.values)}"]}, status=400)
        users = people.user_list(
            team=request.query_params.get("team", ""), level=level, q=request.query_params.get("q", "")[:150]
        )
        paginator = CappedLimitOffset()
        page = paginator.paginate_queryset(users, request, view=self)
        return paginator.get_paginated_response(_users_out(page))

    @extend_schema(request=UserCreateIn, responses={201: UserOut})
    def post(self, request):
        """Admins: make a user (default level researcher, no team)."""
        data = UserCreateIn(data=request.data)
        data.is_valid(raise_exception=True)
        user = people.user_create(by=request.user, **data.validated_data)
        return Response(_users_out([user])[0], status=status.HTTP_201_CREATED)


class UserDetail(APIView):
    permission_classes = [AdminsOnly]

    def _user(self, username: str):
        return get_object_or_404(User.objects.select_related("profile", "profile__team"), username=username)

    @extend_schema(responses=UserOut)
    def get(self, request, username: str):
        return Response(_users_out([self._user(username)])[0])

    @extend_schema(request=UserUpdateIn, responses=UserOut)
    def patch(self, request, username: str):
        """Admins: change a user's level, team (null: none), Unix account, raw-command permission,
        active flag, email or password. Deactivating a user ends their logins and tokens' use."""
        data = UserUpdateIn(data=request.data)
        data.is_valid(raise_exception=True)
        user = people.user_update(by=request.user, user=self._user(username), **data.validated_data)
        return Response(_users_out([user])[0])


class TeamOut(serializers.Serializer):
    name = serializers.CharField()
    member_count = serializers.IntegerField()


class TeamIn(StrictSerializer):
    name = serializers.CharField(max_length=100)


def _team_out(team: Team) -> dict:
    count = getattr(team, "member_count", None)
    return {"name": team.name, "member_count": team.members.count() if count is None else count}


class Teams(APIView):
    permission_classes = [AdminsOnly]

    @extend_schema(
        parameters=[
            text("q", "text in the name"),
            *PAGE_PARAMETERS,
        ],
        responses=paged("TeamPage", TeamOut),
        operation_id="teams_list",
    )
    def get(self, request):
        """Admins: the teams, by name, with how many members each has (`GET /users?team=` lists them)."""
        refuse_nul(request.query_params, "q")
        paginator = CappedLimitOffset()
        page = paginator.paginate_queryset(
            people.team_list(q=request.query_params.get("q", "")[:100]), request, view=self
        )
        return paginator.get_paginated_response([_team_out(t) for t in page])

    @extend_schema(request=TeamIn, responses={201: TeamOut})
    def post(self, request):
        data = TeamIn(data=request.data)
        data.is_valid(raise_exception=True)
        team = people.team_create(by=request.user, name=data.validated_data["name"])
        return Response({"name": team.name, "member_count": 0}, status=status.HTTP_201_CREATED)


class TeamDetail(APIView):
    permission_classes = [AdminsOnly]

    @extend_schema(responses=TeamOut)
    def get(self, request, name: str):
        return Response(_team_out(get_object_or_404(Team, name=name)))

    @extend_schema(request=TeamIn, responses=TeamOut)
    def patch(self, request, name: str):
        """Admins: rename the team (a body without `name` changes nothing)."""
        data = TeamIn(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        team = get_object_or_404(Team, name=name)
        if "name" in data.validated_data:
            team = people.team_rename(by=request.user, team=team, name=data.validated_data["name"])
        return Response(_team_out(team))

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, name: str):
        """Admins: delete a team that has no members left; its jobs lose their team."""
        people.team_delete(by=request.user, team=get_object_or_404(Team, name=name))
        return Response(status=status.HTTP_204_NO_CONTENT)


class LevelOut(serializers.Serializer):
    level = serializers.CharField()
    priority_ceiling = serializers.IntegerField(
        help_text="the default and highest priority its users may ask for (GPUQ_LEVEL_PRIORITY)"
    )
    meaning = serializers.CharField()
    default_time_limit_seconds = serializers.IntegerField(
        allow_null=True, help_text="a job's limit when neither its submit nor its template sets one"
    )
    max_time_limit_seconds = serializers.IntegerField(
        allow_null=True, help_text="the longest limit its users may ask for (null: none)"
    )


class LevelLimitsIn(StrictSerializer):
    default_time_limit_seconds = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    max_time_limit_seconds = serializers.IntegerField(required=False, allow_null=True, min_value=1)


class Levels(APIView):
    permission_classes = [AdminsOnly]

    @extend_schema(responses=LevelOut(many=True))
    def get(self, request):
        """Admins: the levels a user may have (set one with `PATCH /users/{username}`)."""
        return Response(people.levels())


class LevelDetail(APIView):
    permission_classes = [AdminsOnly]

    @extend_schema(
        request=LevelLimitsIn,
        responses=LevelOut,
        parameters=[
            OpenApiParameter("level", {"type": "string", "enum": Level.values}, OpenApiParameter.PATH)
        ],
    )
    def patch(self, request, level: str):
        """Admins: set a level's default and longest time limit in seconds (null: none; a field left out
        is kept). The default may not exceed the maximum."""
        data = LevelLimitsIn(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(people.level_limits_update(by=request.user, level=level, **data.validated_data))
