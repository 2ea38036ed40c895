export { summarize, medianMax, medianIndex, type Summary } from './stats.ts';
export type { LabMode, LabRound, LabPhase, LabRun, LabWws, LabCell, LabMachine, LabReport } from './model.ts';
export { buildCell, type CellMeta } from './cell.ts';
export { labTable, labJson, cellJson, formatBytes } from './render.ts';
export { roundsChartSvg, timelineChartSvg, downtimeChartSvg, wwsChartSvg, labCharts, esc, type DowntimePoint } from './svg.ts';
export { svgProblem } from './svg-check.ts';
export { clientGapMs, heartbeatJumpMs, probeLatencyMs } from './probe-gaps.ts';
export { ProbeRecorder, probeDowntimes, type ProbeRecord, type ProbeRecorderOptions } from './probe-client.ts';
export { timelinePhases, type StepTimes } from './timeline.ts';
