"""A user's Unix account (for GPUQ_RUN_AS=user) is set by admins, in the admin's user page."""

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from accounts.models import Profile


def test_admins_set_a_users_unix_account_on_the_user_page(root, alice):
    client = Client()
    client.force_login(root)
    page = client.get(f"/admin/auth/user/{alice.pk}/change/").content.decode()
    assert 'name="profile-0-unix_username"' in page


@pytest.mark.parametrize("name", ["alice; rm -rf /", "../root", "Alice", "-alice"])
def test_a_unix_account_name_that_is_not_one_is_refused(alice, name):
    profile = Profile.objects.get(user=alice)
    profile.unix_username = name
    with pytest.raises(ValidationError) as error:
        profile.full_clean()
    assert "unix_username" in error.value.message_dict
