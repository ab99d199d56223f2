import { writeFileSync } from 'node:fs';
import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

export interface CurvePoint {
  step: number;
  series: string;
  value: number;
  panel: string;
}

/** The curve points of one metrics.jsonl entry: train loss for a step, NDCG@10 and HR@10 for a validation. */
export function curvePointsOf(e: Record<string, unknown>): CurvePoint[] {
  const step = e.step as number;
  if (e.kind === 'step') return [{ step, series: 'train loss', value: e.loss as number, panel: 'loss' }];
  if (e.kind === 'eval') {
    return [
      { step, series: 'valid NDCG@10', value: e.ndcg10 as number, panel: 'validation' },
      { step, series: 'valid HR@10', value: e.hr10 as number, panel: 'validation' },
    ];
  }
  return [];
}

/**
 * Training and validation curves as one image (a panel per metric family), rendered with
 * Vega-Lite to SVG and rasterized to PNG. Returns the paths written.
 */
export async function plotCurves(points: CurvePoint[], basePath: string, title: string): Promise<{ svg: string; png: string }> {
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title,
    data: { values: points },
    facet: { row: { field: 'panel', type: 'nominal', title: null } },
    spec: {
      width: 640,
      height: 220,
      mark: { type: 'line', point: false },
      encoding: {
        x: { field: 'step', type: 'quantitative', title: 'step' },
        y: { field: 'value', type: 'quantitative', title: null, scale: { zero: false } },
        color: { field: 'series', type: 'nominal', title: null },
      },
    },
    resolve: { scale: { y: 'independent' } },
    config: { background: 'white' },
  };
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  const svgPath = `${basePath}.svg`;
  const pngPath = `${basePath}.png`;
  writeFileSync(svgPath, svg);
  const png = new Resvg(svg, { background: 'white', fitTo: { mode: 'width', value: 1200 } }).render().asPng();
  writeFileSync(pngPath, png);
  return { svg: svgPath, png: pngPath };
}
