// A Node service driving an escalation: every command carries the caller's credential in the
// `escalations-credential` Temporal header, attached by a client interceptor (the SDK's own way).
// Usage: node caller.mjs <case-id> <update> '<json argument>'   (TEMPORAL_ADDRESS, ESCALATIONS_CREDENTIAL)
// Prints the update's result as JSON, or {"error": ..., "type": ...} and exits 1 when it is refused.
import { Client, Connection, WorkflowUpdateFailedError } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';

const HEADER = 'escalations-credential';

// Where the token comes from is the service's business: a CRM mints one per logged-in rep (see the README).
function credential() {
  return process.env.ESCALATIONS_CREDENTIAL;
}

function signed(input) {
  const token = credential();
  if (!token) return input;
  return { ...input, headers: { ...input.headers, [HEADER]: defaultPayloadConverter.toPayload(token) } };
}

const interceptors = {
  workflow: [
    {
      startWithDetails: (input, next) => next(signed(input)),
      startUpdate: (input, next) => next(signed(input)),
      startUpdateWithStart: (input, next) =>
        next({
          ...input,
          workflowStartHeaders: signed({ headers: input.workflowStartHeaders }).headers,
          updateHeaders: signed({ headers: input.updateHeaders }).headers,
        }),
      signal: (input, next) => next(signed(input)),
    },
  ],
};

const [caseId, update, argument] = process.argv.slice(2);
const connection = await Connection.connect({ address: process.env.TEMPORAL_ADDRESS ?? 'localhost:7233' });
try {
  const client = new Client({ connection, interceptors });
  const handle = client.workflow.getHandle(`escalation-${caseId}`);
  const result = await handle.executeUpdate(update, { args: [JSON.parse(argument)] });
  console.log(JSON.stringify(result));
} catch (err) {
  if (!(err instanceof WorkflowUpdateFailedError)) throw err;
  console.log(JSON.stringify({ error: err.cause?.message, type: err.cause?.type }));
  process.exitCode = 1;
} finally {
  await connection.close();
}
