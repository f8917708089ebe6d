"""`gpuq logs -n N`: the last lines come from windows read backwards from the end, never the whole log
(the CLI's reader against the real API views, in process)."""

import pytest

from gpuq_cli.follow import follow
from scheduling.states import Status
from tests.conftest import api_for
from tests.factories import make_job
from tests.scheduling.test_log_api import numbered, store


class Api:
    """The CLI's `get` over the test client, recording what it asked."""

    def __init__(self, user):
        self.client, self.asked = api_for(user), []

    def get(self, path: str, **params):
        params = {k: v for k, v in params.items() if v is not None}
        self.asked.append(params)
        response = self.client.get(f"/api/v1{path}", params)
        assert response.status_code == 200, response.content
        return response.json()


@pytest.mark.parametrize("ending", ["", "half a line"])
def test_the_last_lines_of_a_long_log_are_read_from_its_end(alice, capsys, ending):
    job = make_job(alice, status=Status.COMPLETED)
    data = numbered(200_000) + ending.encode()  # 3 MB
    store(job, data)
    api = Api(alice)
    follow(api, job.pk, keep_following=False, last=3)
    expected = "".join(f"line {i:06d} é\n" for i in range(199_997, 200_000)) + ending
    assert capsys.readouterr().out == expected
    assert {"offset": 0} not in api.asked and len(api.asked) <= 3


def test_more_lines_than_one_window_holds_read_further_back(alice, capsys):
    job = make_job(alice, status=Status.COMPLETED)
    store(job, numbered(200_000))
    follow(Api(alice), job.pk, keep_following=False, last=100_000)  # 1.5 MB: two windows
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 100_000 and out[0] == "line 100000 é" and out[-1] == "line 199999 é"
