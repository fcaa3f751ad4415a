/** The event contract: every event declares its dimensions, and Telemetry.event accepts no others. */
import type { Settings } from '../../../shared/config';
import { EVENT_DIMENSIONS, EVENTS } from '../../../shared/telemetry/events';
import { createTelemetry } from '../../../shared/telemetry/telemetry';

test('every event has its dimension list, and only events have one', () => {
  expect(Object.keys(EVENT_DIMENSIONS).sort()).toEqual(Object.values(EVENTS).sort());
  for (const dims of Object.values(EVENT_DIMENSIONS)) expect(dims.length).toBeGreaterThan(0);
});

test('Telemetry.event takes the dimensions declared for the event, and tsc refuses others', () => {
  const lines: string[] = [];
  const telemetry = createTelemetry({} as Settings, undefined, (_, line) => lines.push(line));
  telemetry.event(EVENTS.QueueBacklog, { queue: 'q', messages: 2 });
  // @ts-expect-error: `vault` is not a dimension of QueueBacklog (tsc, in `npm run lint`, checks this line).
  telemetry.event(EVENTS.QueueBacklog, { queue: 'q', vault: 'kv' });
  expect(lines[0]).toBe('[QueueBacklog] queue=q messages=2');
});
