// The admin capability: its config section and its HTTP server.

export { type AdminConfig, adminSchema } from './config.js';
export { type AdminHandlers, AdminServer } from './server.js';
