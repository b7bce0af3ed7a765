/**
 * Spendwall for Node: put OpenAI and Anthropic calls behind the local Spendwall daemon.
 *
 *     import OpenAI from 'openai';
 *     import { spendwallFetch } from 'spendwall';
 *     const client = new OpenAI({ fetch: spendwallFetch({ agent: 'reviewer' }) });
 *
 * Every call is checked against your caps before it goes upstream and its real usage is
 * reported to the daemon's ledger. See README.md for options, environment and fail modes.
 */
export { spendwallFetch } from './internal/fetch';
export type { FetchLike, SpendwallFetchOptions } from './internal/fetch';
export { createSpendwallAnthropic, createSpendwallOpenAI, wrapAnthropic, wrapOpenAI } from './internal/clients';
export type { SpendwallClientOptions } from './internal/clients';
export { configure } from './internal/config';
export type { Attribution, SpendwallOptions } from './internal/config';
export { withAttribution, withTags } from './internal/context';
export { ApprovalDeniedError, BudgetExceededError, DaemonUnavailableError, KilledError, SpendwallError } from './internal/errors';
export type { JsonObject, UnavailableReason } from './internal/errors';
export { estimate, flush, health, remaining, replaySpool, snapshot } from './internal/helpers';
export type { Estimate } from './internal/helpers';
export type { ReplayCounts } from './internal/runtime';
export type { RequestOptions, Transport, TransportResponse } from './internal/transport';
export type { Usage } from './internal/usage';
export type { Outcome } from './internal/call';

/** This package's version. */
export const VERSION = '0.1.0';
