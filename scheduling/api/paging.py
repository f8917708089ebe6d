"""Paging of API lists: `limit` and `offset`, the limit capped at GPUQ_MAX_PAGE_SIZE (a larger one is
served as the cap), GPUQ_PAGE_SIZE without one."""

from django.conf import settings
from rest_framework.pagination import LimitOffsetPagination


class CappedLimitOffset(LimitOffsetPagination):
    @property
    def default_limit(self):
        return settings.GPUQ_PAGE_SIZE

    @property
    def max_limit(self):
        return settings.GPUQ_MAX_PAGE_SIZE
