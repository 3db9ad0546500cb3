// ovr/report: every public name of src/report/, by file (the package root, src/index.ts, lists the everyday subset).
export { type LineChartSpec, lineChart, lineChartSpec, type Series, vegaLiteToSvg } from './charts.js';
export {
  type Cell,
  escapeHtml,
  type ReportData,
  type ReportSample,
  type ReportTable,
  renderReportHtml,
  writeReport,
} from './html.js';
