import { NameOrderedMap } from '../../local/azure/services/keyvault-store';

test('keys stay in case-insensitive ordinal order however they are added; lookups ignore case', () => {
  const m = new NameOrderedMap<number>();
  for (const [i, k] of ['b', 'A-2', 'c', 'a-1', 'B-0', 'z'].entries()) m.set(k, i);
  m.set('c', 99); // an existing key: replaced, not added again
  expect(m.range(0, 100).map(([k]) => k)).toEqual(['a-1', 'A-2', 'b', 'B-0', 'c', 'z']);
  expect(m.range(2, 4)).toEqual([
    ['b', 0],
    ['B-0', 4],
  ]);
  expect(m.keyOf('C')).toBe('c');
  expect(m.keyOf('a-2')).toBe('A-2');
  expect(m.keyOf('nope')).toBeUndefined();
  expect(m.delete('b')).toBe(true);
  expect(m.delete('b')).toBe(false);
  expect(m.keyOf('B')).toBeUndefined();
  expect(m.range(0, 100).map(([k]) => k)).toEqual(['a-1', 'A-2', 'B-0', 'c', 'z']);
  expect(m.size).toBe(5);
  m.clear();
  expect(m.range(0, 10)).toEqual([]);
});
