// The console's actions, each behind a confirmation that says what will happen.

import { post } from './api.js';
import { h, confirm, announce } from './ui.js';

/** Runs a plan now; on success opens the first job. */
export async function runPlan(plan) {
  const copies = plan.copies.length ? `, then copy each point into ${plan.copies.join(', ')}` : '';
  const ok = await confirm(`Run plan ${plan.name} now?`, [
    h('p', `This backs up ${plan.resources.join(', ')} into vault ${plan.vault}${copies}, as a job started by the API (trigger "api").`),
    h('p', 'It runs alongside the schedule; nothing is deleted. You will be taken to the job to follow it.'),
  ], 'Run now');
  if (!ok) return;
  const s = await post(`/api/v1/plans/${encodeURIComponent(plan.name)}/run`, {});
  announce(`Plan ${plan.name} started`);
  location.hash = s.jobs.length ? `#/jobs/${s.jobs[0]}` : '#/jobs';
}

/** Starts a drill of a stack; on success opens its job. */
export async function startDrill(stack, drill) {
  const where = drill ? `as drill ${drill.name} declares (site ${drill.site}, pick ${drill.pick})` : 'from its site';
  const ok = await confirm(`Start a drill of stack ${stack.name}?`, [
    h('p', `This recovers ${stack.members.map((m) => m.name).join(', ')} into a scratch stack ${where}, runs the stack's check${stack.check ? ` (${stack.check})` : ''}, then stops and removes the scratch stack.`),
    h('p', 'The production stack, its vaults and its replicas are only read. The report is recorded as a job of kind drill.'),
  ], 'Start drill');
  if (!ok) return;
  const s = await post(`/api/v1/stacks/${encodeURIComponent(stack.name)}/drill`, drill ? { drill: drill.name } : {});
  announce(`Drill of ${stack.name} started`);
  location.hash = s.jobs.length ? `#/jobs/${s.jobs[0]}` : '#/drills';
}

/** Asks a running job to stop. */
export async function cancelJob(job) {
  const ok = await confirm(`Cancel job ${job.id}?`, [
    h('p', `This sends SIGTERM to process ${job.pid}, which runs the ${job.kind} of ${job.resource || job.plan || 'this job'}.`),
    h('p', 'A backup stops without making a point (what it stored is reused by the next run); a restore leaves every file complete or absent. The job ends as "cancelled".'),
  ], 'Cancel the job');
  if (!ok) return false;
  await post(`/api/v1/jobs/${job.id}/cancel`);
  announce(`Job ${job.id} asked to stop`);
  return true;
}
