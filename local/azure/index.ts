import { Router } from './http';
import { applySeed, SeedResult } from './seed';
import { Clock, Emulator, Listener, LocalAzureOptions, LocalServers } from './server';
import { controlRoutes } from './control';
import { accountsRouter, workspaceRouter } from './services/databricks';
import { entraRoutes } from './services/entra';
import { KeyVaultEventGrid } from './services/eventgrid';
import { graphRoutes } from './services/graph';
import { keyVaultRouter } from './services/keyvault';
import { NameOrderedMap } from './services/keyvault-store';
import { DOCUMENTED_LIMITS, KeyVaultThrottle, type KeyVaultLimits } from './services/keyvault-throttle';
import { WebhookSink } from './services/sink';
import { CustomTopics } from './services/topic';
import { createState, DEFAULT_TENANT_ID, Seed, State, Vault, Workspace } from './state';
import { TokenService } from './tokens';

export interface LocalAzureStartOptions extends LocalAzureOptions {
  tenantId?: string;
  /** How often the vaults check for near-expiry and expiry under the emulated clock (ms). */
  expiryCheckIntervalMs?: number;
  /** Key Vault's transaction limits; the documented ones unless changed (also later, on keyVaultThrottle.limits). */
  keyVaultLimits?: Partial<KeyVaultLimits>;
}

/**
 * Local Azure: Entra, managed identity, Graph, Key Vault (one origin per vault), Databricks
 * (one origin per workspace, plus the account host), Event Grid push delivery, Event Grid custom
 * topics (publish, under `/topics/{name}` on the main origin) and a webhook sink.
 */
export class LocalAzure implements Emulator {
  state: State;
  readonly clock = new Clock();
  readonly tokens: TokenService;
  readonly events: KeyVaultEventGrid;
  readonly keyVaultThrottle: KeyVaultThrottle;
  readonly sink = new WebhookSink();
  /** Custom topics (the notification topic): events published to them, readable by tests. */
  readonly topics = new CustomTopics(this);
  readonly servers: LocalServers;
  private main?: Listener;
  private accounts?: Listener;
  private readonly instances = new Map<string, Listener>();
  private timer?: NodeJS.Timeout;

  private constructor(options: LocalAzureStartOptions) {
    this.state = createState(options.tenantId ?? DEFAULT_TENANT_ID);
    this.servers = new LocalServers(options);
    this.tokens = new TokenService(
      () => this.state,
      () => this.url,
    );
    this.events = new KeyVaultEventGrid(
      () => this.state,
      this.clock,
      undefined,
      undefined,
      this.servers.faults,
    );
    this.keyVaultThrottle = new KeyVaultThrottle({ ...DOCUMENTED_LIMITS, ...options.keyVaultLimits });
    this.clock.onAdvance(() => this.events.checkExpiry());
  }

  static async start(options: LocalAzureStartOptions = {}): Promise<LocalAzure> {
    const azure = new LocalAzure(options);
    const router = new Router();
    entraRoutes(azure, router);
    graphRoutes(azure, router);
    azure.sink.routes(router);
    azure.topics.routes(router);
    controlRoutes(azure, router);
    azure.main = await azure.servers.listen('main', router, { port: options.port });
    azure.accounts = await azure.servers.listen('accounts', accountsRouter(azure));
    azure.timer = setInterval(() => azure.events.checkExpiry(), options.expiryCheckIntervalMs ?? 1000);
    azure.timer.unref();
    return azure;
  }

  /** Origin of Entra, managed identity, Graph (`/graph`), the webhook sink (`/sink`) and the control API. */
  get url(): string {
    if (!this.main) throw new Error('LocalAzure is not started');
    return this.main.url;
  }

  /** Authority host for @azure/identity credentials. */
  get authorityHost(): string {
    return this.url;
  }

  get graphUrl(): string {
    return `${this.url}/graph`;
  }

  /** Managed identity endpoint, App Service style (`IDENTITY_ENDPOINT`). */
  get identityEndpoint(): string {
    return `${this.url}/msi/token`;
  }

  /** The Databricks account host (`https://accounts.azuredatabricks.net` in Azure). */
  get accountsUrl(): string {
    if (!this.accounts) throw new Error('LocalAzure is not started');
    return this.accounts.url;
  }

  vaultUrl(name: string): string {
    const l = this.instances.get(`keyvault/${name}`);
    if (!l) throw new Error(`no vault named ${name}`);
    return l.url;
  }

  workspaceUrl(name: string): string {
    const l = this.instances.get(`databricks/${name}`);
    if (!l) throw new Error(`no workspace named ${name}`);
    return l.url;
  }

  /** Creates a vault with its own origin (the Key Vault SDK needs one origin per vault). */
  async addVault(name: string): Promise<Vault> {
    const existing = this.state.vaults.get(name);
    if (existing) return existing;
    const vault: Vault = {
      name,
      url: '',
      roles: new Map(),
      secrets: new NameOrderedMap(),
      deleted: new NameOrderedMap(),
    };
    const listener = await this.servers.listen('keyvault', keyVaultRouter(this, vault), { instance: name });
    vault.url = listener.url;
    this.instances.set(`keyvault/${name}`, listener);
    this.state.vaults.set(name, vault);
    return vault;
  }

  async addWorkspace(workspace: Omit<Workspace, 'url'>): Promise<Workspace> {
    const existing = this.state.workspaces.get(workspace.name);
    if (existing) return existing;
    const ws: Workspace = { ...workspace, url: '' };
    const listener = await this.servers.listen('databricks', workspaceRouter(this, ws), {
      instance: ws.name,
    });
    ws.url = listener.url;
    this.instances.set(`databricks/${ws.name}`, listener);
    this.state.workspaces.set(ws.name, ws);
    return ws;
  }

  /** Creates an Event Grid custom topic; returns its endpoint (for NOTIFICATION_TOPIC_ENDPOINT). */
  addTopic(name: string): string {
    this.topics.add(name);
    return this.topics.endpoint(name);
  }

  seed(seed: Seed): Promise<SeedResult> {
    return applySeed(this, seed);
  }

  /** Back to an empty tenant: closes vault and workspace origins, clears faults, counts, events, sink, topics. */
  async reset(): Promise<void> {
    await Promise.all([...this.instances.values()].map((l) => this.servers.close(l)));
    this.instances.clear();
    this.state = createState(this.state.tenantId);
    this.clock.reset();
    this.servers.faults.clear();
    this.servers.counts.reset();
    this.events.reset();
    this.sink.reset();
    this.topics.reset();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.events.close();
    await this.servers.closeAll();
  }
}

export type { Seed, SeedResult };
