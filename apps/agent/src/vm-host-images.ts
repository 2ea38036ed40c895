/**
 * Image transfers of an agent (LocalVmHost): capturing a VM as an image and uploading the image
 * file to the coordinator's catalog (`vm-capture`), and downloading an image the agent's library
 * lacks before provisioning from it (`vm-create`). Both speak HTTP to the coordinator with the
 * cluster bearer token: `PUT /api/v1/images/:id/file` and `GET /api/v1/images/:id/file`.
 *
 * A capture goes into a throw-away library in `<dataDir>/image-transfers/`, not the agent's own, so
 * a failed upload leaves nothing behind: the id stays free here and in the catalog. The agent's
 * library gets the image the first time a VM is created from it (a download).
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { ImageExistsError, ImageLibrary, UnknownImageError, exportImageFile, importImageFile } from '@ferry/images';
import { API_ROUTES, apiPath, type AgentToCoordinatorMessage, type VmCaptureMessage } from '@ferry/protocol';
import type { LocalVmHost } from './vm-host-local.ts';

/** How an agent reaches the coordinator's HTTP API: its URL (`ws://`, `http://`…, as given to the agent) and the cluster token. */
export interface CoordinatorAccess {
  readonly url: string;
  readonly token: string;
}

/** Room an image file takes beyond the guest memory it holds (the coordinator accepts the same). */
const IMAGE_FILE_OVERHEAD_BYTES = 1024 * 1024;

/** An image transfer that failed (HTTP error, short file, no coordinator address). */
export class ImageTransferError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ImageTransferError';
    this.code = code;
  }
}

/** The coordinator's HTTP base URL from the URL the agent dials (`ws://h:p/agent` → `http://h:p`). */
export function coordinatorHttpUrl(url: string): string {
  const u = new URL(url);
  if (u.protocol === 'ws:') u.protocol = 'http:';
  else if (u.protocol === 'wss:') u.protocol = 'https:';
  return u.origin;
}

function fileUrl(access: CoordinatorAccess, imageId: string): string {
  return coordinatorHttpUrl(access.url) + apiPath(API_ROUTES.imageFile, imageId);
}

function requireAccess(access: CoordinatorAccess | undefined, what: string): CoordinatorAccess {
  if (!access) throw new ImageTransferError('FERRY_ERR_IMAGE_TRANSFER', `cannot ${what}: this agent was not given the coordinator's HTTP address (LocalVmHostOptions.coordinator)`);
  return access;
}

/** A failed transfer from an HTTP reply: FERRY_ERR_IMAGE_TRANSFER, with the coordinator's code and message (`{ error: { code, message } }`) or the status. */
async function replyError(res: Response, what: string): Promise<ImageTransferError> {
  let detail = `HTTP ${res.status}`;
  try {
    const body = (await res.json()) as { error?: { code?: string; message?: string } };
    if (body.error?.code) detail = `${detail} ${body.error.code}: ${body.error.message ?? ''}`;
  } catch {
    // not a JSON error body: the status says it
  }
  return new ImageTransferError('FERRY_ERR_IMAGE_TRANSFER', `${what} failed: ${detail}`);
}

/**
 * Answers `vm-capture`: pauses the VM if it runs, captures its memory into a throw-away library,
 * resumes it (also when the capture fails), exports the image file and uploads it to the
 * coordinator, then replies `vm-captured`. Refused (FERRY_ERR_INVALID_STATE) unless the VM is
 * running or paused and free (no migration, no other dirty-log user). Leaves no file behind.
 */
export async function captureVm(host: LocalVmHost, m: VmCaptureMessage, access: CoordinatorAccess | undefined): Promise<AgentToCoordinatorMessage> {
  const coordinator = requireAccess(access, `capture ${m.vmId}`);
  const e = host.entry(m.vmId);
  if (e.migrationId || e.busy) throw new ImageTransferError('FERRY_ERR_INVALID_STATE', `vm ${m.vmId} is ${e.migrationId ? `migrating (${e.migrationId})` : `busy (${e.busy})`}`);
  const vm = e.vm;
  if (vm.state !== 'running' && vm.state !== 'paused') throw new ImageTransferError('FERRY_ERR_INVALID_STATE', `vm ${m.vmId} is ${vm.state}; a capture needs it running or paused`);
  const work = await mkdtemp(join(await host.dir('image-transfers'), `${m.imageId}-`));
  e.busy = 'capture';
  try {
    const diskBytes = e.image !== undefined ? await (await host.images()).get(e.image).then((i) => i.diskBytes, () => 0) : 0;
    const scratch = await ImageLibrary.open(join(work, 'library'), { builtIns: false });
    let pauseMs = 0;
    let pages: number;
    try {
      const wasRunning = vm.state === 'running';
      const pausedAt = performance.now();
      if (wasRunning) await vm.pause();
      try {
        const report = await scratch.capture(vm.memory, { id: m.imageId, name: m.name, description: m.description, dirtyLog: vm.dirtyLog, diskBytes });
        pages = report.image.pages;
      } finally {
        if (wasRunning && (vm.state as string) === 'paused') await vm.resume();
        if (wasRunning) pauseMs = performance.now() - pausedAt;
      }
      await exportImageFile(scratch, m.imageId, join(work, 'image.snap'));
    } finally {
      await scratch.close();
    }
    const path = join(work, 'image.snap');
    const { size } = await stat(path);
    const res = await fetch(fileUrl(coordinator, m.imageId), {
      method: 'PUT',
      headers: { authorization: `Bearer ${coordinator.token}`, 'content-type': 'application/octet-stream', 'content-length': String(size) },
      body: Readable.toWeb(createReadStream(path)) as ReadableStream<Uint8Array>,
      duplex: 'half',
    } as RequestInit);
    if (res.status !== 201) throw await replyError(res, `upload of image ${m.imageId}`);
    await res.body?.cancel();
    host.logger.info({ event: 'image-captured', vmId: m.vmId, imageId: m.imageId, pages, pause_ms: pauseMs, file_bytes: size }, 'image captured and uploaded');
    return { type: 'vm-captured', requestId: m.requestId, vmId: m.vmId, image: { id: m.imageId, name: m.name, memoryBytes: vm.memory.byteLength, diskBytes, pages }, pauseMs, fileBytes: size };
  } finally {
    e.busy = undefined;
    await rm(work, { recursive: true, force: true });
  }
}

/** Downloads in progress, per library: one download per image however many VMs wait for it. */
const downloads = new WeakMap<ImageLibrary, Map<string, Promise<void>>>();

/**
 * Makes sure `library` holds `imageId` before provisioning from it: if it lacks the image (a
 * captured one; built-ins are always there), downloads the image file from the coordinator
 * (at most `maxMemoryBytes` of guest memory + 1 MiB) into `<dataDir>/image-transfers/`, imports it
 * under the same id, and deletes the file. An unknown id at the coordinator stays UnknownImageError.
 */
export async function ensureImage(host: LocalVmHost, library: ImageLibrary, imageId: string, maxMemoryBytes: number, access: CoordinatorAccess | undefined): Promise<void> {
  try {
    await library.get(imageId);
    return;
  } catch (err) {
    if (!(err instanceof UnknownImageError)) throw err;
  }
  let inFlight = downloads.get(library);
  if (!inFlight) downloads.set(library, (inFlight = new Map()));
  let download = inFlight.get(imageId);
  if (!download) {
    const map = inFlight;
    download = downloadImage(host, library, imageId, maxMemoryBytes + IMAGE_FILE_OVERHEAD_BYTES, requireAccess(access, `download image ${imageId}`)).finally(() => map.delete(imageId));
    inFlight.set(imageId, download);
  }
  await download;
}

async function downloadImage(host: LocalVmHost, library: ImageLibrary, imageId: string, maxBytes: number, coordinator: CoordinatorAccess): Promise<void> {
  const res = await fetch(fileUrl(coordinator, imageId), { headers: { authorization: `Bearer ${coordinator.token}` } });
  if (res.status === 404) {
    await res.body?.cancel();
    throw new UnknownImageError(imageId);
  }
  if (res.status !== 200 || !res.body) throw await replyError(res, `download of image ${imageId}`);
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (declared > maxBytes) {
    await res.body.cancel();
    throw new ImageTransferError('FERRY_ERR_IMAGE_TRANSFER', `image ${imageId} is ${declared} bytes, more than the ${maxBytes} this VM can take`);
  }
  const work = await mkdtemp(join(await host.dir('image-transfers'), `${imageId}-`));
  const path = join(work, 'image.snap');
  const started = performance.now();
  try {
    let bytes = 0;
    const bound = new Transform({
      transform(chunk: Buffer, _enc, done) {
        bytes += chunk.length;
        if (bytes > maxBytes) done(new ImageTransferError('FERRY_ERR_IMAGE_TRANSFER', `image ${imageId} is more than ${maxBytes} bytes`));
        else done(null, chunk);
      },
    });
    await pipeline(Readable.fromWeb(res.body as WebReadableStream<Uint8Array>), bound, createWriteStream(path));
    if (Number.isFinite(declared) && bytes !== declared) throw new ImageTransferError('FERRY_ERR_IMAGE_TRANSFER', `image ${imageId}: got ${bytes} of ${declared} bytes`);
    try {
      await importImageFile(library, path, { id: imageId });
    } catch (err) {
      if (!(err instanceof ImageExistsError)) throw err; // another process of this data dir got it first
    }
    host.logger.info({ event: 'image-downloaded', imageId, file_bytes: bytes, duration_ms: Math.round(performance.now() - started) }, 'image downloaded from the coordinator');
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
