# Bash completion for aotgrad: its commands, each command's options (read from its --help,
# so they stay true), pass names after --after, --emit's kinds, and files elsewhere.
# Installed by cmake --install as share/bash-completion/completions/aotgrad; or source it.
_aotgrad() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]} cmd=${COMP_WORDS[1]}
    local ag=${COMP_WORDS[0]}
    if [ "$COMP_CWORD" -eq 1 ]; then
        local cmds
        cmds=$("$ag" --help 2>/dev/null | awk '/^commands:/ { f = 1; next } f && /^  [a-z]/ { print $1 } f && /^$/ { exit }')
        COMPREPLY=($(compgen -W "$cmds --help --version" -- "$cur"))
        return
    fi
    case $prev in
    --after)
        COMPREPLY=($(compgen -W "all $("$ag" passes 2>/dev/null | awk '{ print $1 }')" -- "$cur"))
        return ;;
    --emit)
        COMPREPLY=($(compgen -W "exe obj h ll s ir cu ptx" -- "$cur"))
        return ;;
    --target)
        COMPREPLY=($(compgen -W "cpu cpu,cuda" -- "$cur"))
        return ;;
    --color)
        COMPREPLY=($(compgen -W "auto always never" -- "$cur"))
        return ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$("$ag" "$cmd" --help 2>/dev/null | grep -o -- '--[a-z][a-z0-9-]*' | sort -u) --color=" -- "$cur"))
    else
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
}
complete -o filenames -F _aotgrad aotgrad
