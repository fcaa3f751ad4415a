import type { Emulator } from '../server';
import type { Router } from '../http';

/** Microsoft Graph under `/graph/v1.0`: applications, addPassword, removePassword, sendMail. */
export function graphRoutes(_em: Emulator, _router: Router): void {
  // implemented in the Graph work item
}
