"""REST API for a user's own API tokens (mounted at /api/v1/tokens): list, make, revoke."""

from django.conf import settings
from django.http import Http404
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import services
from accounts.models import ApiToken
from accounts.permissions import can_submit, is_admin, level_of, team_of
from queueproject.strict import StrictSerializer


class TokenOut(serializers.ModelSerializer):
    """A token as its owner sees it: never the key or its digest."""

    expired = serializers.SerializerMethodField()

    class Meta:
        model = ApiToken
        fields = ["id", "name", "hint", "created_at", "expires_at", "last_used_at", "expired"]

    def get_expired(self, token) -> bool:
        return token.expires_at <= timezone.now()


class TokenCreatedOut(TokenOut):
    key = serializers.CharField(help_text="The token itself: shown this once, stored only as a hash.")

    class Meta(TokenOut.Meta):
        fields = [*TokenOut.Meta.fields, "key"]


class TokenIn(StrictSerializer):
    name = serializers.CharField(required=False, allow_blank=True, max_length=100, default="")
    days = serializers.IntegerField(
        required=False, allow_null=True, default=None, min_value=1, help_text="1 to GPUQ_TOKEN_MAX_DAYS"
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["days"].max_value = settings.GPUQ_TOKEN_MAX_DAYS  # read now: tests change it


class TokenListCreate(APIView):
    @extend_schema(responses=TokenOut(many=True))
    def get(self, request):
        return Response(TokenOut(services.token_list(user=request.user), many=True).data)

    @extend_schema(request=TokenIn, responses={201: TokenCreatedOut})
    def post(self, request):
        data = TokenIn(data=request.data)
        data.is_valid(raise_exception=True)
        made_with = request.auth if isinstance(request.auth, ApiToken) else None
        token, key = services.token_create(user=request.user, made_with=made_with, **data.validated_data)
        token.key = key
        return Response(TokenCreatedOut(token).data, status=status.HTTP_201_CREATED)


class TokenRevoke(APIView):
    @extend_schema(request=None, responses={204: None})
    def delete(self, request, token_id: int):
        if not services.token_revoke(user=request.user, token_id=token_id):
            raise Http404("No token of yours has this id.")
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeOut(serializers.Serializer):
    username = serializers.CharField()
    level = serializers.CharField(help_text="admin, lead, researcher or viewer")
    team = serializers.CharField(allow_null=True)
    is_admin = serializers.BooleanField()
    can_submit = serializers.BooleanField()


class Me(APIView):
    """Who the credentials belong to (the command line's `gpuq login` and `--mine` ask)."""

    @extend_schema(responses=MeOut)
    def get(self, request):
        team = team_of(request.user)
        return Response(
            {
                "username": request.user.get_username(),
                "level": level_of(request.user),
                "team": team.name if team else None,
                "is_admin": is_admin(request.user),
                "can_submit": can_submit(request.user),
            }
        )
