// The process logger is shared with the other Ferry processes (@ferry/transport process-logger.ts).
export { createLogger, type Logger } from '@ferry/transport';
