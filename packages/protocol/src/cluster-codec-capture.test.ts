import { describe, expect, it } from 'vitest';
import { pack } from 'msgpackr';
import { agentClusterCodec, coordinatorClusterCodec } from './cluster-codec.ts';
import { MessageInvalidError } from './errors.ts';
import type { VmCaptureMessage, VmCapturedMessage } from './cluster-messages.ts';
import { API_ROUTES, apiPath, matchApiRoute } from './api-routes.ts';

describe('image capture messages and routes', () => {
  it('vm-capture and vm-captured round-trip through the codecs', () => {
    const capture: VmCaptureMessage = { type: 'vm-capture', requestId: 'r1', vmId: 'vm-1', imageId: 'web-golden', name: 'web-golden', description: 'a web server' };
    expect(agentClusterCodec.decode(coordinatorClusterCodec.encode(capture))).toEqual(capture);
    const captured: VmCapturedMessage = {
      type: 'vm-captured',
      requestId: 'r1',
      vmId: 'vm-1',
      image: { id: 'web-golden', name: 'web-golden', memoryBytes: 16 * 2 ** 20, diskBytes: 2 ** 30, pages: 812 },
      pauseMs: 12.5,
      fileBytes: 3_400_000,
    };
    expect(coordinatorClusterCodec.decode(agentClusterCodec.encode(captured))).toEqual(captured);
  });

  it('refuses an image id that could escape a directory, and a capture without its fields', () => {
    const raw = { type: 'vm-capture', requestId: 'r', vmId: 'v', imageId: '../etc', name: 'x', description: '' };
    expect(() => agentClusterCodec.decode(pack(raw))).toThrow(MessageInvalidError);
    expect(() => agentClusterCodec.decode(pack({ ...raw, imageId: 'ok' }))).not.toThrow();
    expect(() => agentClusterCodec.decode(pack({ ...raw, imageId: 'ok', description: undefined }))).toThrow(MessageInvalidError);
  });

  it('the image file route is its own route, not GET /images/:id', () => {
    expect(apiPath(API_ROUTES.imageFile, 'web-golden')).toBe('/api/v1/images/web-golden/file');
    expect(matchApiRoute('/api/v1/images/web-golden/file')).toEqual({ route: API_ROUTES.imageFile, id: 'web-golden' });
    expect(matchApiRoute('/api/v1/images/web-golden')).toEqual({ route: API_ROUTES.image, id: 'web-golden' });
  });
});
