/* Layout helpers, instantiated for T = float and T = double by _layout.c. */

/* dst[j * dst_ld + i] = src[i * src_ld + j], i < rows, j < cols; in tiles
 * so that both sides stay in cache. */
RC_DISPATCH
void S(rc_transpose)(int rows, int cols, const T *src, ptrdiff_t src_ld, T *dst,
                     ptrdiff_t dst_ld)
{
    enum { TILE = 16 };
    for (int i0 = 0; i0 < rows; i0 += TILE) {
        int i1 = rows - i0 < TILE ? rows : i0 + TILE;
        for (int j0 = 0; j0 < cols; j0 += TILE) {
            int j1 = cols - j0 < TILE ? cols : j0 + TILE;
            for (int j = j0; j < j1; j++) {
                T *restrict d = dst + j * dst_ld;
                const T *restrict s = src + j;
                for (int i = i0; i < i1; i++)
                    d[i] = s[i * src_ld];
            }
        }
    }
}

/* acc[j] += sum_i x[i * ld + j] for j < n (bias gradients, rows layout). */
RC_DISPATCH
void S(rc_sum_rows)(int rows, int n, const T *x, ptrdiff_t ld, T *acc)
{
    for (int i = 0; i < rows; i++) {
        const T *restrict xi = x + i * ld;
        T *restrict a = acc;
        for (int j = 0; j < n; j++)
            a[j] += xi[j];
    }
}

/* acc[j] += sum_k x[j * ld + k] for k < cols (bias gradients, columns
 * layout); eight running sums per row so the loop vectorises. */
RC_DISPATCH
void S(rc_sum_cols)(int n, int cols, const T *x, ptrdiff_t ld, T *acc)
{
    for (int j = 0; j < n; j++) {
        const T *restrict xj = x + j * ld;
        T part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        int k = 0;
        for (; k + 8 <= cols; k += 8)
            for (int l = 0; l < 8; l++)
                part[l] += xj[k + l];
        T total = 0;
        for (; k < cols; k++)
            total += xj[k];
        acc[j] += ((part[0] + part[4]) + (part[1] + part[5]))
                  + ((part[2] + part[6]) + (part[3] + part[7])) + total;
    }
}
