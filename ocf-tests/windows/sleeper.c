/* The supervised program of the Wine service test: a console program that runs until it is
 * stopped (a console control event ends it through the default handler) or killed. */
#include <windows.h>
int main(void) {
    Sleep(INFINITE);
    return 0;
}
