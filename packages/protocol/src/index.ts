export type { Channel, ChannelCloseInfo } from './channel.ts';
