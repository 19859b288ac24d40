/*
 * fasa_calib.c - entry point of fasa-calib, the offline calibration tool of
 * libfasa (docs/calibration.md). Each sub-command lives in its own file.
 */
#include "calib.h"

#include <stdio.h>
#include <string.h>

static const char usage[] =
    "usage: fasa-calib COMMAND ...   (libfasa %s)\n"
    "  run DUMP_DIR... -o OUT.fasa [options]  calibrate a profile from q/k .npy dumps\n"
    "  show PROFILE [--csv]                   shape, K values, dense layers, dominant FCs\n"
    "  plot PROFILE -o MAP.svg [--k K]        agreement heatmap (SVG)\n"
    "  diff A B                               overlap of the dominant FC sets\n"
    "  select PROFILE -o OUT [--nfc N] ...    re-derive the dominant sets\n"
    "'fasa-calib COMMAND --help' lists a command's options; see docs/calibration.md.\n";

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {{"run", calib_cmd_run},
                {"show", calib_cmd_show},
                {"plot", calib_cmd_plot},
                {"diff", calib_cmd_diff},
                {"select", calib_cmd_select}};
    if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        printf(usage, fasa_version_string());
        return 0;
    }
    if (argc >= 2)
        for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
            if (strcmp(argv[1], cmds[i].name) == 0)
                return cmds[i].fn(argc - 2, argv + 2);
    fprintf(stderr, usage, fasa_version_string());
    if (argc >= 2)
        calib_error("unknown command '%s'", argv[1]);
    return 2;
}
