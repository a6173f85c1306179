// Schema of the `admin:` section.

import { z } from 'zod';
import { addPillionIssue, address } from '../config/index.js';
import { formatAddress, isLoopback } from '../lib/address.js';

export const adminSchema = z
  .strictObject({
    listen: address()
      .prefault('127.0.0.1:15000')
      .describe(
        'Address of the admin server (health, readiness, metrics, config, reload, quit). Loopback unless allowRemote is set.',
      ),
    allowRemote: z
      .boolean()
      .default(false)
      .describe(
        'Allow listen to be a non-loopback address. The admin API can reload and stop the process: expose it on purpose only.',
      ),
  })
  .superRefine((admin, ctx) => {
    if (!admin.allowRemote && !isLoopback(admin.listen.host)) {
      const where =
        admin.listen.host === ''
          ? `every interface (${formatAddress(admin.listen)})`
          : `"${admin.listen.host}"`;
      addPillionIssue(
        ctx,
        'PILLION_ERR_CONFIG_ADMIN_NOT_LOOPBACK',
        `the admin server would listen on ${where}, which is not loopback`,
        'use 127.0.0.1:PORT, or set admin.allowRemote: true',
        ['listen'],
      );
    }
  })
  .prefault({})
  .describe('The admin server. Binds loopback by default.');

export type AdminConfig = z.output<typeof adminSchema>;
