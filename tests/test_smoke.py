from escalation.client import open_case
from tests.cases import case_input, owned


async def test_case_opens_and_gets_an_owner(env, worker, settings):
    handle = await open_case(env.client, case_input(), task_queue_name=settings.task_queue)
    state = await owned(handle)
    assert state.tier == "agent"
    assert state.owner is not None and state.owner.tier == "agent"
