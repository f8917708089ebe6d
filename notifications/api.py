"""REST API of notifications: a user's own preferences, webhook and deliveries (/api/v1/me/notifications…) and the
team webhooks admins set (/api/v1/notifications/team-hooks…). Thin: parse, call notifications.services."""

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Team
from notifications import services
from notifications.models import Delivery, Format, Kind, Webhook
from queueproject.strict import StrictSerializer
from scheduling.api.paging import PAGE_PARAMETERS, CappedLimitOffset, paged


class KindOut(serializers.Serializer):
    kind = serializers.ChoiceField(choices=Kind.choices)
    label = serializers.CharField()
    email = serializers.BooleanField()
    webhook = serializers.BooleanField()


class WebhookOut(serializers.ModelSerializer):
    secret_hint = serializers.CharField(help_text="The secret's first characters (it is shown only once).")
    team = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)

    class Meta:
        model = Webhook
        fields = ["id", "name", "url", "format", "enabled", "kinds", "team", "secret_hint", "created_at"]


class WebhookMadeOut(WebhookOut):
    secret = serializers.CharField(
        allow_null=True,
        help_text="The signing secret: shown once, when the webhook is made or its secret rotated; else null.",
    )

    class Meta(WebhookOut.Meta):
        fields = [*WebhookOut.Meta.fields, "secret"]


class SettingsOut(serializers.Serializer):
    email = serializers.CharField(help_text="Where e-mail goes (the account's address; empty: no e-mail).")
    kinds = KindOut(many=True)
    webhook = WebhookOut(allow_null=True)


class ChannelsIn(StrictSerializer):
    email = serializers.BooleanField(required=False)
    webhook = serializers.BooleanField(required=False)


# One optional field per kind, so the schema names every kind and anything else is a 400 naming it.
KindsIn = type(
    "KindsIn",
    (StrictSerializer,),
    {kind.value: ChannelsIn(required=False, help_text=kind.label) for kind in Kind},
)


class SettingsIn(StrictSerializer):
    kinds = KindsIn(
        required=False,
        help_text='Per kind, the channels to change: {"failed": {"email": true, "webhook": false}}.',
    )


class WebhookIn(StrictSerializer):
    url = serializers.URLField(max_length=500, help_text="http:// or https://")
    format = serializers.ChoiceField(choices=Format.choices, required=False, default=Format.JSON)
    enabled = serializers.BooleanField(required=False, default=True)
    rotate_secret = serializers.BooleanField(required=False, default=False)


def _settings(user) -> dict:
    return {
        "email": user.email,
        "kinds": services.preferences_of(user),
        "webhook": WebhookOut(user.webhooks.first()).data if user.webhooks.exists() else None,
    }


class MyNotifications(APIView):
    @extend_schema(responses=SettingsOut)
    def get(self, request):
        """How you hear about your jobs: per kind, e-mail and webhook on or off, and your webhook."""
        return Response(_settings(request.user))

    @extend_schema(request=SettingsIn, responses=SettingsOut)
    def patch(self, request):
        """Change the channels of some kinds (the others keep theirs)."""
        data = SettingsIn(data=request.data)
        data.is_valid(raise_exception=True)
        services.preferences_set(user=request.user, changes=data.validated_data.get("kinds", {}))
        return Response(_settings(request.user))


class MyWebhook(APIView):
    @extend_schema(request=WebhookIn, responses=WebhookMadeOut)
    def put(self, request):
        """Set your webhook. Its signing secret is in the answer when the webhook is made (or with
        `rotate_secret`), and never again."""
        data = WebhookIn(data=request.data)
        data.is_valid(raise_exception=True)
        hook, secret = services.webhook_set(user=request.user, **data.validated_data)
        return Response({**WebhookOut(hook).data, "secret": secret})

    @extend_schema(request=None, responses={204: None})
    def delete(self, request):
        if not services.webhook_remove(user=request.user):
            raise Http404("You have no webhook.")
        return Response(status=status.HTTP_204_NO_CONTENT)


class DeliveryOut(serializers.ModelSerializer):
    class Meta:
        model = Delivery
        fields = [
            "key",
            "kind",
            "channel",
            "target",
            "job_id",
            "status",
            "attempts",
            "last_error",
            "next_try_at",
            "created_at",
            "delivered_at",
        ]


class MyDeliveries(APIView):
    @extend_schema(parameters=PAGE_PARAMETERS, responses=paged("PaginatedDeliveries", DeliveryOut))
    def get(self, request):
        """Your notifications, newest first: whether each was delivered, its attempts and last error
        (to see why your webhook or mail does not arrive)."""
        paginator = CappedLimitOffset()
        mine = Delivery.objects.filter(user=request.user).order_by("-created_at", "-pk")
        page = paginator.paginate_queryset(mine, request, view=self)
        return paginator.get_paginated_response(DeliveryOut(page, many=True).data)


class TeamHookIn(StrictSerializer):
    team = serializers.SlugRelatedField(slug_field="name", queryset=Team.objects.all())
    url = serializers.URLField(max_length=500, help_text="http:// or https://")
    kinds = serializers.ListField(child=serializers.ChoiceField(choices=Kind.choices), max_length=len(Kind))
    format = serializers.ChoiceField(choices=Format.choices, required=False, default=Format.JSON)
    name = serializers.CharField(max_length=100, required=False, default="", allow_blank=True)


class TeamHooks(APIView):
    @extend_schema(parameters=PAGE_PARAMETERS, responses=paged("PaginatedTeamHooks", WebhookOut))
    def get(self, request):
        """Admins: the team webhooks (a team's jobs' news, with the fields everyone sees)."""
        paginator = CappedLimitOffset()
        page = paginator.paginate_queryset(services.team_hooks(user=request.user), request, view=self)
        return paginator.get_paginated_response(WebhookOut(page, many=True).data)

    @extend_schema(request=TeamHookIn, responses={201: WebhookMadeOut})
    def post(self, request):
        """Admins: add a team webhook; its signing secret is in this answer only."""
        services.team_hooks(user=request.user)  # admins only, before anything is read
        data = TeamHookIn(data=request.data)
        data.is_valid(raise_exception=True)
        hook, secret = services.team_hook_create(user=request.user, **data.validated_data)
        return Response({**WebhookOut(hook).data, "secret": secret}, status=status.HTTP_201_CREATED)


class TeamHookDetail(APIView):
    @extend_schema(request=None, responses={204: None})
    def delete(self, request, hook_id: int):
        if not services.team_hook_remove(user=request.user, hook_id=hook_id):
            raise Http404("No team webhook has this id.")
        return Response(status=status.HTTP_204_NO_CONTENT)
