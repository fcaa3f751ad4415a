import type { GraphApi } from '../../clients/graph';
import { PermanentError } from '../../errors';
import type { Channel } from '../channel';
import { emailHtml, emailSubject } from '../render';

/**
 * Graph `sendMail` as MAIL_SENDER (the service's identity needs Mail.Send, ideally limited to that
 * mailbox by an application access policy) to the message's recipients, or MAIL_DEFAULT_TO.
 */
export function emailChannel(graph: GraphApi, sender: string, defaultTo: string[]): Channel {
  return {
    name: 'email',
    async send(message) {
      const to = message.to ?? defaultTo;
      if (to.length === 0) throw new PermanentError('no email recipients: MAIL_DEFAULT_TO is empty');
      const n = message.notification;
      await graph.sendMail(sender, { subject: emailSubject(n), html: emailHtml(n), to });
    },
  };
}
